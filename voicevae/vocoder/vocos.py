"""A small Vocos-style vocoder: ConvNeXt backbone on log-mels + inverse-STFT head.

Rather than upsampling 256x with transposed convolutions (HiFi-GAN), the
network stays at the frame rate and predicts, per frame, the magnitude and
phase of an STFT with the front end's n_fft and hop; one inverse FFT turns
that into audio. Nearly all compute runs at ~86 frames/s, which is what makes
it fast on a CPU.

    features (B, n_mels, F) -> backbone (B, F, dim) -> head -> audio (B, F * hop)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn

from ..config import ConfigError, MelConfig, VocosConfig
from ..features import MelFrontend
from .base import Vocoder


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> MLP, residual. x (B, dim, F) -> (B, dim, F)."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        # A small residual-branch gain keeps a deep stack near identity at init.
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = rearrange(self.dwconv(x), "b c f -> b f c")
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))
        return x + rearrange(self.gamma * h, "b f c -> b c f")


class Backbone(nn.Module):
    """logmel (B, n_mels, F) -> hidden (B, F, dim)."""

    def __init__(self, n_mels: int, config: VocosConfig) -> None:
        super().__init__()
        k = config.kernel_size
        self.embed = nn.Conv1d(n_mels, config.dim, k, padding=k // 2)
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.dim, config.intermediate_dim, k, 1.0 / config.num_layers) for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.embed(logmel)
        x = rearrange(self.norm(rearrange(x, "b c f -> b f c")), "b f c -> b c f")
        for block in self.blocks:
            x = block(x)
        return self.final_norm(rearrange(x, "b c f -> b f c"))


class ISTFT(nn.Module):
    """Inverse STFT aligned with the front end: spec (B, n_fft/2+1, F) complex -> (B, F * hop).

    The front end pads (n_fft - hop) / 2 on each side and does not centre, so
    frame f spans padded samples [f * hop, f * hop + n_fft). Overlap-adding the
    frames at those positions and trimming the same padding gives exactly
    F * hop samples in step with the analysis. torch.istft cannot do this:
    with center=False its window-envelope check fails at the zero-weight ends.
    """

    window: torch.Tensor  # buffer

    def __init__(self, n_fft: int, hop_length: int, win_length: int) -> None:
        super().__init__()
        if win_length != n_fft:
            raise ConfigError(f"the Vocos head needs win_length == n_fft, got {win_length} and {n_fft}")
        self.n_fft, self.hop_length = n_fft, hop_length
        self.pad = (n_fft - hop_length) // 2
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        n_frames = spec.shape[-1]
        frames = torch.fft.irfft(spec, self.n_fft, dim=1) * self.window[None, :, None]  # (B, n_fft, F)
        length = (n_frames - 1) * self.hop_length + self.n_fft
        fold = dict(output_size=(1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        audio = F.fold(frames, **fold)[:, 0, 0]
        envelope = F.fold(self.window.square()[None, :, None].expand(1, -1, n_frames), **fold)[0, 0, 0]
        stop = self.pad + n_frames * self.hop_length
        return audio[:, self.pad : stop] / envelope[self.pad : stop].clamp_min(1e-11)


class ISTFTHead(nn.Module):
    """hidden (B, F, dim) -> STFT magnitude and phase (`polar`); `istft` turns them into audio (B, F * hop).

    With `inverse_fb` (n_mels, n_freqs) the log-magnitude is predicted relative
    to log(pinv(filterbank) @ mel), which needs the log-mel in `polar`.
    """

    def __init__(
        self,
        dim: int,
        n_fft: int,
        hop_length: int,
        win_length: int,
        inverse_fb: torch.Tensor | None = None,
        log_floor: float = 1e-5,
        phase: str = "angle",
    ) -> None:
        super().__init__()
        n_freqs = n_fft // 2 + 1
        self.phase = phase
        # Per bin: log-magnitude, then one phase angle or a (real, imaginary) pair.
        self.proj = nn.Linear(dim, n_freqs * (3 if phase == "atan2" else 2))
        self.istft = ISTFT(n_fft, hop_length, win_length)
        self.log_floor = log_floor
        if inverse_fb is not None:
            # Zero corrections at init: training starts from the mel-inverse magnitude.
            with torch.no_grad():
                self.proj.weight[: n_fft // 2 + 1].zero_()
                self.proj.bias[: n_fft // 2 + 1].zero_()
            self.register_buffer("inverse_fb", inverse_fb, persistent=False)
        else:
            self.inverse_fb = None

    def polar(self, hidden: torch.Tensor, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, F, dim), logmel (B, n_mels, F) -> magnitude, phase: each (B, n_fft/2+1, F)."""
        x = rearrange(self.proj(hidden).float(), "b f c -> b c f")
        if self.phase == "atan2":
            log_mag, real, imag = x.chunk(3, dim=1)
            phase = torch.atan2(imag, real)
        else:
            log_mag, phase = x.chunk(2, dim=1)
        if self.inverse_fb is not None:
            prior = einsum(self.inverse_fb, torch.exp(logmel.float()), "m k, b m f -> b k f")
            log_mag = log_mag + torch.log(prior.clamp_min(self.log_floor))
        # The clamp keeps exp() finite early in training when outputs are wild.
        mag = torch.exp(log_mag).clamp_max(1e2)
        return mag, phase


class VocosVocoder(Vocoder):
    """Fast trainable vocoder: logmel (B, n_mels, F) -> audio (B, F * hop)."""

    # Receptive field: (num_layers + 1) * (kernel_size - 1) / 2 frames each side
    # (27 for the default), plus n_fft / hop frames of overlap-add; chunking drops
    # a quarter of the overlap at each edge, and the influence of the padding
    # fades well before the full receptive field.
    overlap_frames = 64

    def __init__(self, mel_config: MelConfig, config: VocosConfig | None = None) -> None:
        super().__init__(mel_config)
        config = config or VocosConfig()
        config.validate()
        self.config = config
        # A clip's last output frame reads up to `reach` frames past its end.
        # The tail must also keep a batch's extra chunks (vocode's chunking)
        # from crossfading into the clip: they start overlap_frames before the
        # padded end and blend from a quarter of the overlap on.
        reach = (config.num_layers + 1) * (config.kernel_size - 1) // 2 + mel_config.n_fft // mel_config.hop_length
        self.batch_tail_frames = max(reach, self.overlap_frames - self.overlap_frames // 4)
        self.backbone = Backbone(mel_config.n_mels, config)
        inverse_fb = None
        if config.mel_prior:
            # (n_freqs, n_mels) filterbank of the front end -> (n_mels, n_freqs).
            inverse_fb = torch.linalg.pinv(MelFrontend(mel_config).mel.mel_scale.fb)
        self.head = ISTFTHead(
            config.dim,
            mel_config.n_fft,
            mel_config.hop_length,
            mel_config.win_length,
            inverse_fb,
            mel_config.log_floor,
            config.phase,
        )

    def polar(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """logmel (B, n_mels, F) -> predicted STFT magnitude and phase (radians), each (B, n_fft/2+1, F).

        Framed like the front end's STFT, so training can supervise the phase
        bin by bin; `forward` inverts it.
        """
        hidden = self.backbone(logmel)
        # FFTs are not supported in half precision; the head runs in float32.
        with torch.autocast(hidden.device.type, enabled=False):
            return self.head.polar(hidden.float(), logmel)

    def synthesize(self, mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """STFT magnitude and phase (B, n_fft/2+1, F) -> audio (B, F * hop)."""
        with torch.autocast(mag.device.type, enabled=False):
            return self.head.istft(torch.polar(mag, phase))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        """logmel (B, n_mels, F) -> audio (B, F * hop)."""
        return self.synthesize(*self.polar(logmel))
