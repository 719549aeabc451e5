"""The convolutional VAE on log-mel spectrograms.

Two latents, both with the prior N(0, I) (or a uniform categorical, below):

- speaker latent z_s (B, speaker_dim): one vector per utterance, from a
  convolutional encoder pooled over time. It holds what stays constant over an
  utterance (timbre, pitch range, speaking style); averaging it over the
  utterances of a speaker gives that speaker's vector.
- content latent z_c (B, content_dim, L), L = ceil(F / downsample): one vector
  per `downsample` mel frames, from an encoder whose instance normalisation
  strips per-utterance channel statistics, so what changes frame to frame
  (phones, prosody) goes here and the voice does not.

The decoder upsamples z_c back to F frames and modulates every block with a
scale and shift computed from z_s (adaptive instance normalisation), giving
the mean mu (B, n_mels, F) of p(x | z) = N(mu, sigma^2 I) with a learned
sigma per mel bin. With `pitch_input` it also reads the source's intonation
(B, 3, F) (pitch.intonation), added after the upsampling: p(x | z, pitch). With
`harmonic_source` a comb of that F0's harmonics (harmonics.py) is added to mu.
Without a contour (pitch=None) it reads zeros, a flat unvoiced one; the
conversion API passes the source's real contour.

Mel values are standardised with per-bin statistics of the training data
(buffers `mel_mean`, `mel_std`) before encoding; the likelihood is computed on
standardised values and `log_px` adds back the Jacobian so its unit is nats
per utterance of log-mel values.

With content_latent="categorical" the content latent is discrete: each latent
frame picks one of `content_codes` learned embeddings. It cannot be
reparameterized and is trained with the score-function estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from torch import nn

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import MelConfig, VAEConfig, from_dict, to_dict
from .distributions import (
    Categorical,
    DiagonalGaussian,
    gaussian_nll,
    importance_log_mean_exp,
    standard_normal_log_prob,
)
from .harmonics import HarmonicComb
from .pitch import INTONATION_CHANNELS, MELODY_CHANNELS
from .postfilter import sharpen

# Where the register head starts: log2 of 150 Hz, mid-way between typical male and female voices.
REGISTER_PRIOR = math.log2(150.0)

# The small models shipped with the package (README, "The shipped default model"): the
# default, trained on synthetic and real recorded voices, and the previous default,
# trained on the synthetic voices alone.
DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "default" / "model.pt"
SYNTHETIC_MODEL = Path(__file__).resolve().parent / "assets" / "synthetic" / "model.pt"
SHIPPED_MODELS = {"default": DEFAULT_MODEL, "synthetic": SYNTHETIC_MODEL}


def band_masked(x: torch.Tensor, band_bins: torch.Tensor | None) -> torch.Tensor:
    """x (..., B, n_mels, F) with every bin at or above band_bins[b] of clip b set to 0 (None: unchanged).

    A band-limited recording has no signal above its band: what is measured
    or judged there (the reconstruction, the adversarial stage) is zeroed.
    """
    if band_bins is None:
        return x
    inside = torch.arange(x.shape[-2], device=x.device)[None, :] < band_bins[:, None].to(x.device)  # (B, M)
    return x * inside[:, :, None]


class ResBlock(nn.Module):
    """x + conv1x1(gelu(conv_k(norm(x)))): (B, C, L) -> (B, C, L).

    norm is instance norm without affine in the content encoder (removes the
    utterance's channel means and scales, i.e. much of the voice) and
    identity elsewhere.
    """

    def __init__(self, channels: int, kernel_size: int, instance_norm: bool = False) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm1d(channels, affine=False) if instance_norm else nn.Identity()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.gelu(self.conv(self.norm(x))))


class SpeakerEncoder(nn.Module):
    """log-mel (B, n_mels, F) -> q(z_s | x): mean and log-variance (B, speaker_dim).

    Mean and standard deviation of the conv features over the valid frames are
    pooled; `lengths` (B,) marks valid frames of padded batches.
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.inp = nn.Conv1d(cfg.n_mels, cfg.channels, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.blocks = nn.Sequential(*[ResBlock(cfg.channels, cfg.kernel_size) for _ in range(cfg.n_blocks)])
        self.out = nn.Linear(2 * cfg.channels, 2 * cfg.speaker_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> DiagonalGaussian:
        h = self.blocks(self.inp(x))
        if lengths is None:
            mean = reduce(h, "b c f -> b c", "mean")
            std = h.std(dim=-1, unbiased=False)
        else:
            mask = (torch.arange(h.shape[-1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)
            mask = rearrange(mask, "b f -> b 1 f")
            count = mask.sum(-1).clamp(min=1)
            mean = (h * mask).sum(-1) / count
            std = (((h - mean.unsqueeze(-1)) ** 2 * mask).sum(-1) / count).sqrt()
        mu, logvar = self.out(torch.cat([mean, std], dim=1)).chunk(2, dim=1)
        return DiagonalGaussian(mu, logvar.clamp(-12.0, 6.0))


class ContentEncoder(nn.Module):
    """log-mel (B, n_mels, F) -> content posterior over (B, content_dim, L), L = F / downsample.

    Returns a DiagonalGaussian, or for the categorical option a Categorical
    whose logits are (B, content_codes, L). F must be a multiple of downsample.
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.categorical = cfg.content_latent == "categorical"
        self.inp = nn.Conv1d(cfg.n_mels, cfg.channels, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.blocks = nn.Sequential(*[ResBlock(cfg.channels, cfg.kernel_size, instance_norm=True) for _ in range(cfg.n_blocks)])
        self.down = nn.Conv1d(cfg.channels, cfg.channels, cfg.downsample, stride=cfg.downsample)
        n_out = cfg.content_codes if self.categorical else 2 * cfg.content_dim
        self.out = nn.Conv1d(cfg.channels, n_out, 1)

    def forward(self, x: torch.Tensor) -> DiagonalGaussian | Categorical:
        h = self.out(F.gelu(self.down(self.blocks(self.inp(x)))))
        if self.categorical:
            return Categorical(h)
        mu, logvar = h.chunk(2, dim=1)
        return DiagonalGaussian(mu, logvar.clamp(-12.0, 6.0))


class AdaINBlock(nn.Module):
    """Residual conv block whose normalised activations are scaled and shifted by z_s.

    x (B, C, F), z_s (B, speaker_dim) -> (B, C, F).
    """

    def __init__(self, channels: int, kernel_size: int, speaker_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm1d(channels, affine=False)
        self.style = nn.Linear(speaker_dim, 2 * channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        scale, shift = rearrange(self.style(z_s), "b (two c) -> two b c 1", two=2)
        h = self.norm(x) * (1 + scale) + shift
        return x + self.proj(F.gelu(self.conv(h)))


class Decoder(nn.Module):
    """(z_c (B, content_dim, L), z_s (B, speaker_dim)[, pitch (B, 3, L * downsample)]) -> mu (B, n_mels, L * downsample).

    With a harmonic source (VAEConfig.harmonic_source) mu also carries the
    comb of the frame's F0 (harmonics.py), F0 = 2^(pitch row 0 + row 2):
    the melody from the contour, the register from row 2. `register(z_s)`
    predicts that register from a speaker latent, for conversions.
    """

    def __init__(self, cfg: VAEConfig, mel_config: MelConfig) -> None:
        super().__init__()
        self.inp = nn.Conv1d(cfg.content_dim, cfg.channels, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.up = nn.ConvTranspose1d(cfg.channels, cfg.channels, cfg.downsample, stride=cfg.downsample)
        pad = cfg.kernel_size // 2
        self.pitch = nn.Conv1d(MELODY_CHANNELS, cfg.channels, cfg.kernel_size, padding=pad) if cfg.pitch_input else None
        self.blocks = nn.ModuleList([AdaINBlock(cfg.channels, cfg.kernel_size, cfg.speaker_dim) for _ in range(cfg.n_blocks)])
        self.out = nn.Conv1d(cfg.channels, cfg.n_mels, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.comb: HarmonicComb | None = None
        if cfg.harmonic_source:
            self.comb = HarmonicComb(mel_config)
            self.comb_gain = gain = nn.Conv1d(cfg.channels, cfg.n_mels, 1)
            # Starts shallow (gain sigmoid(-2) = 0.12): a full-depth comb at step 0 would swamp the envelope.
            nn.init.zeros_(gain.weight)
            assert gain.bias is not None  # a Conv1d has one unless told otherwise
            nn.init.constant_(gain.bias, -2.0)
            self.register_head = nn.Linear(cfg.speaker_dim, 1)
            nn.init.zeros_(self.register_head.weight)
            nn.init.constant_(self.register_head.bias, REGISTER_PRIOR)

    def register(self, z_s: torch.Tensor) -> torch.Tensor:
        """The register (mean log2 F0) a speaker latent speaks at: (B, speaker_dim) -> (B,)."""
        return self.register_head(z_s)[:, 0]

    def forward(self, z_c: torch.Tensor, z_s: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        h = self.up(F.gelu(self.inp(z_c)))
        if self.pitch is not None:
            frames = h.shape[-1]
            if pitch is None:
                pitch = h.new_zeros((h.shape[0], INTONATION_CHANNELS, frames))
            # A contour for the unpadded frames is padded as unvoiced; (B,) or (1,) batches broadcast.
            pitch = F.pad(pitch[..., :frames], (0, frames - min(frames, pitch.shape[-1]))).float()
            h = h + self.pitch(pitch[:, :MELODY_CHANNELS].to(h.dtype))
        for block in self.blocks:
            h = block(h, z_s)
        h = F.gelu(h)
        mu = self.out(h)
        if self.comb is not None and pitch is not None:
            # F0 from the float32 contour: in bfloat16 a log2 F0 near 7 is only good to 1/32 octave.
            ripple = self.comb(pitch[:, 0] + pitch[:, 2], pitch[:, 1])  # (B, n_mels, F), 0 where unvoiced
            # In standardised units, so the gain's full depth is the table's ripple times the bin's std.
            mu = mu + torch.sigmoid(self.comb_gain(h)) * ripple.to(mu.dtype)
        return mu


@dataclass
class Posterior:
    """q(z | x) of one batch: content (B, Dc, L) or categorical logits, and speaker (B, Ds)."""

    content: DiagonalGaussian | Categorical
    speaker: DiagonalGaussian
    frames: int  # F of the (unpadded) input


class VAE(nn.Module):
    """Convolutional VAE with an utterance-level speaker latent and a frame-level content latent.

    Shapes: x is a log-mel (B, n_mels, F) in natural-log units as MelFrontend
    gives it. Every public method accepts any F >= 1; inputs are padded to a
    multiple of `downsample` internally and outputs cropped back to F.
    """

    kind = "vae"
    # Buffers, declared for the type checker (register_buffer sets them).
    mel_mean: torch.Tensor
    mel_std: torch.Tensor

    def __init__(self, config: VAEConfig | None = None, mel_config: MelConfig | None = None) -> None:
        super().__init__()
        self.config = config or VAEConfig()
        self.mel_config = mel_config or MelConfig(n_mels=self.config.n_mels)
        self.config.validate()
        if self.mel_config.n_mels != self.config.n_mels:
            raise ValueError(f"mel n_mels={self.mel_config.n_mels} differs from model n_mels={self.config.n_mels}")
        cfg = self.config
        self.speaker_encoder = SpeakerEncoder(cfg)
        self.content_encoder = ContentEncoder(cfg)
        self.decoder = Decoder(cfg, self.mel_config)
        if cfg.content_latent == "categorical":
            self.codebook = nn.Embedding(cfg.content_codes, cfg.content_dim)
        self.log_sigma = nn.Parameter(torch.full((cfg.n_mels,), cfg.init_log_sigma), requires_grad=cfg.learn_sigma)
        self.register_buffer("mel_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("mel_std", torch.ones(cfg.n_mels))

    # ----- layout helpers -------------------------------------------------------------

    @property
    def floor(self) -> float:
        return math.log(self.mel_config.log_floor)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-bin statistics (n_mels,) of training log-mels; call once before training."""
        self.mel_mean.copy_(mean)
        self.mel_std.copy_(std.clamp(min=1e-3))

    def latent_frames(self, frames: int) -> int:
        """L = ceil(F / downsample): the content latent frames of F mel frames (`prepare` pads to a multiple)."""
        return -(-frames // self.config.downsample)

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Standardise and pad (B, n_mels, F) on the right to a multiple of downsample.

        Returns (xn (B, n_mels, F'), F): what the encoders take, and the
        number of real frames to crop outputs back to.
        """
        if x.ndim != 3 or x.shape[1] != self.config.n_mels:
            raise ValueError(f"expected log-mel (B, {self.config.n_mels}, F), got shape {tuple(x.shape)}")
        frames = x.shape[-1]
        if frames < 1:
            raise ValueError("log-mel has no frames")
        # Pad with silence so padding looks like the ends of real clips. Always
        # called (0 frames is a no-op), so traced graphs (export.py, realtime.py)
        # keep the padding for lengths other than the one they were traced at.
        x = F.pad(x, (0, (-frames) % self.config.downsample), value=self.floor)
        xn = (x - self.mel_mean[:, None]) / self.mel_std[:, None]
        return xn, frames

    def _denormalize(self, xn: torch.Tensor) -> torch.Tensor:
        return xn * self.mel_std[:, None] + self.mel_mean[:, None]

    # ----- the model ------------------------------------------------------------------

    def posterior(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> Posterior:
        """q(z | x) for log-mel x (B, n_mels, F)."""
        xn, frames = self.prepare(x)
        return Posterior(self.content_encoder(xn), self.speaker_encoder(xn, lengths), frames)

    def content_features(self, x: torch.Tensor) -> torch.Tensor:
        """The content encoder's hidden features at the frame rate: log-mel (B, n_mels, F) -> (B, channels, F).

        Instance-normalised, wider than the content latent and not squeezed
        through its KL: the space retrieval matches frames in (matching.py).
        """
        xn, frames = self.prepare(x)
        enc = self.content_encoder
        return enc.blocks(enc.inp(xn))[..., :frames]

    def content_embedding(self, index: torch.Tensor) -> torch.Tensor:
        """Categorical code indices (..., B, L) -> decoder input (..., B, content_dim, L)."""
        return rearrange(self.codebook(index), "... l d -> ... d l")

    def decode_normalized(self, z_c: torch.Tensor, z_s: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """mu of p(x|z) in standardised units: (B, Dc, L), (B, Ds)[, (B, 3, F)] -> (B, n_mels, L*downsample)."""
        return self.decoder(z_c, z_s, pitch)

    def decode(
        self, z_c: torch.Tensor, z_s: torch.Tensor, frames: int | None = None, pitch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Log-mel mean (B, n_mels, F) from latents; `frames` crops the padding; pitch (B, 3, F) for a pitch_input model."""
        mel = self._denormalize(self.decode_normalized(z_c, z_s, pitch))
        return mel if frames is None else mel[..., :frames]

    def log_likelihood(
        self, xn: torch.Tensor, mu: torch.Tensor, frames: int, band_bins: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log p(x | z) in standardised units, summed over bins and the first `frames` frames.

        xn (B, n_mels, F'), mu (..., B, n_mels, F') -> (..., B). band_bins
        (B,): only the lowest band_bins[b] bins of clip b count (a
        band-limited recording has no signal above them to reconstruct).
        """
        nll = band_masked(gaussian_nll(xn[..., :frames], mu[..., :frames], self.log_sigma[:, None]), band_bins)
        return -nll.flatten(start_dim=-2).sum(-1)

    def sample_content(self, q: DiagonalGaussian | Categorical, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draw content latents. Returns (decoder input, code indices or None).

        Gaussian: reparameterized (gradients flow). Categorical: indices drawn
        without a gradient path; the encoder learns through the score function.
        """
        if isinstance(q, Categorical):
            index = q.sample(n)
            return self.content_embedding(index), index
        return q.rsample(n), None

    def log_px(self, x: torch.Tensor, n_samples: int = 64, chunk: int = 16, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Importance-sampled log p(x) per utterance, (B,), in nats (given the intonation (B, 3, F) for a pitch_input model).

        log p(x) ~ log 1/N sum_n p(x|z_n) p(z_n) / q(z_n|x), z_n ~ q(z|x), with
        both latents drawn jointly from the posterior. Includes the Jacobian of
        the per-bin standardisation so the density is over raw log-mels.
        """
        xn, frames = self.prepare(x)
        q = Posterior(self.content_encoder(xn), self.speaker_encoder(xn), frames)
        log_w = []
        for start in range(0, n_samples, chunk):
            k = min(chunk, n_samples - start)
            z_s = q.speaker.rsample(k)  # (k, B, Ds)
            z_c, index = self.sample_content(q.content, k)  # (k, B, Dc, L)
            contour = None if pitch is None else repeat(pitch, "b c f -> (k b) c f", k=k)
            mu = self.decoder(rearrange(z_c, "k b d l -> (k b) d l"), rearrange(z_s, "k b d -> (k b) d"), contour)
            mu = rearrange(mu, "(k b) m f -> k b m f", k=k)
            lw = self.log_likelihood(xn, mu, frames)
            lw = lw + standard_normal_log_prob(z_s, 1) - q.speaker.log_prob(z_s)
            if index is None:
                lw = lw + standard_normal_log_prob(z_c, 2) - q.content.log_prob(z_c)
            else:
                n_pos = index.shape[-1]
                lw = lw - n_pos * math.log(self.config.content_codes) - q.content.log_prob(index)
            log_w.append(lw)
        log_jacobian = -torch.log(self.mel_std).sum() * frames
        return importance_log_mean_exp(torch.cat(log_w, dim=0), dim=0) + log_jacobian

    # ----- inference verbs ------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> Posterior:
        """q(z | x) for inference; use .speaker.mu and .content.mu for point estimates."""
        return self.posterior(x, lengths)

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the posterior means: log-mel (B, n_mels, F)[, intonation (B, 3, F)] -> (B, n_mels, F) (the clip's own register)."""
        q = self.posterior(x)
        z_c = self._point_content(q.content)
        return self.decode(z_c, q.speaker.mu, q.frames, pitch)

    def _point_content(self, q: DiagonalGaussian | Categorical) -> torch.Tensor:
        if isinstance(q, Categorical):
            return self.content_embedding(q.logits.argmax(dim=1))
        return q.mu

    @torch.inference_mode()
    def convert(
        self,
        x: torch.Tensor,
        speaker: torch.Tensor,
        pitch: torch.Tensor | None = None,
        own_register: bool = False,
        postfilter: float = 0.0,
        content_affine: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Keep the content of x, decode with speaker latent(s) (B, Ds) or (Ds,): -> (B, n_mels, F).

        pitch (B, 3, F): the source's intonation, for a pitch_input model
        (a harmonic source speaks it at the target's register: `with_register`).
        own_register: keep the source's register instead (resynthesis, where
        the speaker latent is the source's own and its head would only add
        its error, a semitone or so).
        postfilter: sharpen the decoded formants by this much (postfilter.py);
        inference only, training fits the decoder's plain mean.
        content_affine (scale, shift), each (Dc,): the content latents become
        z_c * scale + shift per channel before decoding (content_stats.py).
        """
        xn, frames = self.prepare(x)
        # Only the content encoder: the speaker latent is given (and live conversion runs this per block).
        z_c = self._point_content(self.content_encoder(xn))
        if content_affine is not None:
            scale, shift = content_affine
            z_c = z_c * rearrange(scale.to(z_c), "d -> d 1") + rearrange(shift.to(z_c), "d -> d 1")
        if speaker.ndim == 1:
            speaker = repeat(speaker, "d -> b d", b=x.shape[0])
        speaker = speaker.to(x.dtype)
        contour = pitch if own_register else self.with_register(pitch, speaker)
        return sharpen(self.decode(z_c, speaker, frames, contour), postfilter)

    @torch.inference_mode()
    def content_means(self, x: torch.Tensor) -> torch.Tensor:
        """The content latents' point estimates: log-mel (B, n_mels, F) -> (B, content_dim, L), L = ceil(F / downsample)."""
        xn, _ = self.prepare(x)
        return self._point_content(self.content_encoder(xn))

    def with_register(self, pitch: torch.Tensor | None, speaker: torch.Tensor) -> torch.Tensor | None:
        """The source's intonation (B, 3, F) at the register of speaker latents (B, Ds) -> (B, 3, F).

        Either batch may be 1 and is repeated to the other's. A harmonic
        source places its comb at the source's melody around the target's
        register (the decoder's `register` head); any other model gets
        `pitch` back unchanged.
        """
        if pitch is None or self.decoder.comb is None:
            return pitch
        # Plain ints: a traced graph (realtime.frozen_networks) gives sizes as tensors, which a set cannot compare.
        pb, sb = int(pitch.shape[0]), int(speaker.shape[0])
        b = max(pb, sb)
        if pb not in (1, b) or sb not in (1, b):
            raise ValueError(f"intonation batch {pb} and speaker batch {sb} differ")
        pitch = repeat(pitch[:1], "1 c f -> b c f", b=b) if pb < b else pitch
        speaker = repeat(speaker[:1], "1 d -> b d", b=b) if sb < b else speaker
        # Detached: the head learns the register from "pitch/register" alone, not from what a decode asks of it.
        register = self.decoder.register(speaker).detach().to(pitch.dtype)
        # expand_as, not an in-place broadcast: a traced graph keeps the length dynamic.
        return torch.cat([pitch[:, :2], register[:, None, None].expand_as(pitch[:, 2:3])], dim=1)

    @torch.inference_mode()
    def sample_prior(
        self, n: int, frames: int, speaker: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Generate (n, n_mels, frames) log-mels with z ~ N(0, I) (speaker may be given, (n, Ds))."""
        cfg = self.config
        length = self.latent_frames(frames)
        dev = self.mel_mean.device
        if cfg.content_latent == "categorical":
            index = torch.randint(0, cfg.content_codes, (n, length), generator=generator, device=dev)
            z_c = self.content_embedding(index)
        else:
            z_c = torch.randn((n, cfg.content_dim, length), generator=generator, device=dev)
        if speaker is None:
            speaker = torch.randn((n, cfg.speaker_dim), generator=generator, device=dev)
        return self.decode(z_c, speaker, frames)

    # ----- persistence ----------------------------------------------------------------

    def export(self) -> dict:
        """Plain-data form: configs and weights."""
        return {"config": to_dict(self.config), "mel": to_dict(self.mel_config), "model": self.state_dict()}

    def save(self, path: str | Path, **extra) -> Path:
        """Atomically write a weights-only checkpoint that `VAE.load` reads without outside config."""
        return save_checkpoint(path, self.kind, {**self.export(), **extra})

    @classmethod
    def from_checkpoint(cls, data: dict, where: str = "checkpoint") -> VAE:
        model = cls(
            from_dict(VAEConfig, data["config"], f"{where}: model config"),
            from_dict(MelConfig, data["mel"], f"{where}: mel config"),
        )
        try:
            model.load_state_dict(data["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{where}: weights do not fit the stored config ({e})") from e
        return model

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> VAE:
        """Read a VAE checkpoint written by `save` or by training (kind 'vae' or 'vae-train')."""
        data = load_checkpoint(path, ("vae", "vae-train"), map_location)
        return cls.from_checkpoint(data, str(path)).eval()
