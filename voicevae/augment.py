"""Training-time perturbations of log-mels: voice, speaker and channel.

Three uses, all on batches of log-mels (B, n_mels, F), natural log of the
mel magnitude (features.py):

- `random_warp`: the content encoder's input gets a random voice (below);
- `speaker_warp`: pseudo-speakers, one warp per speaker of a batch applied to
  input and target alike, so the speaker latent sees a continuum of voices
  instead of a few points;
- `channel`: gain, additive noise, room reverberation and band limits on what
  the encoders see, with the target left clean, so real recordings (a phone,
  a room, a noisy line) encode like the clean corpus.

Speaker perturbation of the content encoder's input:

The content latent z_c must carry *what* is said, not *who* says it; the
speaker latent z_s carries the voice. A content encoder that sees the clip
unchanged can pass voice cues (formant positions, pitch) through z_c, and the
decoder then ignores z_s, so conversion barely changes the voice. A small
content bottleneck limits that leak but also loses words.

Instead, during training the content encoder sees the clip with its voice
randomly altered, while the speaker encoder and the reconstruction target
stay the original. Voice cues in z_c are then unreliable, and the decoder
must take them from z_s; the words survive any perturbation. The encoder is
still a valid variational posterior q(z_c | x) (it is a function of x and
noise), so the objective stays a lower bound on log p(x).

The perturbation is a vocal-tract-length-style warp of the mel axis: bin m of
the output reads bin m * alpha of the input (linear interpolation), which
moves formants and harmonics together by the factor alpha, drawn log-uniform
in [1/(1 + r), 1 + r] per clip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio
from einops import rearrange

from .config import ChannelConfig, MelConfig
from .features import bins_below


def warp_mel(mel: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Stretch the mel axis of (B, n_mels, F) by alpha (B,): out[:, m] = mel[:, m * alpha].

    Bins read past the top take the top bin's value.
    """
    b, m, f = mel.shape
    src = torch.arange(m, device=mel.device, dtype=mel.dtype)[None, :] * alpha[:, None].to(mel.dtype)  # (B, M)
    src = src.clamp(max=m - 1)
    # grid_sample over an image of height M, width F: y follows the warp, x is the identity.
    y = rearrange(2 * src / (m - 1) - 1, "b m -> b m 1").expand(b, m, f)
    x = torch.linspace(-1, 1, f, device=mel.device, dtype=mel.dtype)[None, None, :].expand(b, m, f)
    grid = torch.stack([x, y], dim=-1)  # (B, M, F, 2)
    out = F.grid_sample(rearrange(mel, "b m f -> b 1 m f"), grid, mode="bilinear", align_corners=True)
    return rearrange(out, "b 1 m f -> b m f")


def random_warp(mel: torch.Tensor, max_ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """`warp_mel` with alpha log-uniform in [1/(1 + max_ratio), 1 + max_ratio] per clip.

    generator: a CPU generator to draw from instead of the global stream on mel's device.
    """
    if max_ratio <= 0:
        return mel
    if generator is not None:
        return warp_mel(mel, _log_uniform(mel.shape[0], max_ratio, generator, mel.device))
    span = math.log1p(max_ratio)
    alpha = torch.exp((2 * torch.rand(mel.shape[0], device=mel.device) - 1) * span)
    return warp_mel(mel, alpha)


def _log_uniform(n: int, max_ratio: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    span = math.log1p(max_ratio)
    return torch.exp((2 * torch.rand(n, generator=generator) - 1) * span).to(device)


def speaker_warp(
    mel: torch.Tensor, speakers: torch.Tensor, band_bins: torch.Tensor, max_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-speakers: every clip of one speaker in the batch gets the same warp factor.

    mel (B, M, F), speakers (B,) speaker index, band_bins (B,) bins holding
    signal. Returns the warped mels and their band bins: a warp that reads
    above a clip's band (alpha > 1) or past the top bin leaves the bins it
    fills with no real signal, and those drop out of the band.
    """
    if max_ratio <= 0:
        return mel, band_bins
    ids, inverse = torch.unique(speakers, return_inverse=True)
    alpha = _log_uniform(len(ids), max_ratio, generator, mel.device)[inverse]  # (B,)
    warped = warp_mel(mel, alpha)
    # out[m] reads in[m * alpha], real while m * alpha <= band - 1.
    bins = torch.floor((band_bins.to(alpha) - 1) / alpha).long() + 1
    return warped, bins.clamp(1, mel.shape[1])


def channel(
    mel: torch.Tensor, cfg: ChannelConfig, mel_config: MelConfig, floor: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random recording conditions on log-mels (B, M, F) -> (B, M, F); each clip draws its own.

    Level: a gain in [-gain_db, gain_db]. Noise: a flat-to-tilted noise floor
    at an SNR in snr_db below the clip's mean magnitude, added in the
    magnitude domain. Reverberation: an exponential room tail with RT60 in
    rt60_s, a one-pole filter along time in the power domain mixed with the
    direct sound. Band limit: every bin above a cut-off in band_hz set to the
    silence floor, as an 8 kHz phone line would.
    """
    b, m, f = mel.shape
    dev = mel.device

    def draw(p: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) < p).to(dev)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(b, generator=generator)).to(dev)

    out = mel
    on = draw(cfg.p_reverb)
    if bool(on.any()):
        frames_per_s = mel_config.sample_rate / mel_config.hop_length
        decay = torch.exp(-6.91 / (uniform(*cfg.rt60_s) * frames_per_s))  # power falls 60 dB in RT60
        power = rearrange(torch.exp(2 * out), "b m f -> m b f")
        a = torch.stack([torch.ones_like(decay), -decay], dim=-1)
        bb = torch.stack([1 - decay, torch.zeros_like(decay)], dim=-1)
        tail = torchaudio.functional.lfilter(power, a, bb, clamp=False, batching=True)
        wet = 0.5 * torch.log(power + uniform(0.3, 1.0)[:, None] * tail)  # tail level relative to direct
        out = torch.where(on[:, None, None], rearrange(wet, "m b f -> b m f"), out)
    on = draw(cfg.p_noise)
    if bool(on.any()):
        level = torch.logsumexp(out.flatten(1), dim=1) - math.log(m * f)  # log mean magnitude
        snr = uniform(*cfg.snr_db) * math.log(10) / 20
        tilt = uniform(-1.0, 1.0)[:, None] * torch.linspace(-1, 1, m, device=dev)[None, :]  # +-1 neper across the band
        noise_level = (level - snr)[:, None] + tilt  # (B, M)
        jitter = torch.randn(b, m, f, generator=generator).to(dev) * 0.5
        noisy = torch.logaddexp(out, noise_level[:, :, None] + jitter)
        out = torch.where(on[:, None, None], noisy, out)
    on = draw(cfg.p_gain)
    if bool(on.any()):
        gain = uniform(-cfg.gain_db, cfg.gain_db) * math.log(10) / 20
        out = torch.where(on[:, None, None], (out + gain[:, None, None]).clamp(min=floor), out)
    on = draw(cfg.p_band)
    if bool(on.any()):
        cut = uniform(*cfg.band_hz)
        top = torch.tensor([bins_below(mel_config, float(c)) for c in cut], device=dev)
        above = torch.arange(m, device=dev)[None, :] >= top[:, None]  # (B, M)
        out = torch.where((on[:, None] & above)[:, :, None], torch.full_like(out, floor), out)
    return out
