"""GAN discriminators: multi-period (HiFi-GAN) and multi-resolution (UnivNet/Vocos) for vocoder
training, and a mel-patch discriminator for the VAE decoder's adversarial stage.

Each discriminator maps audio (B, T) to a list of logits (one per
sub-discriminator) and a list of feature-map lists (for feature matching).
Widths are configurable because the full HiFi-GAN sizes (up to 1024 channels)
cost more than the generator itself on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

LRELU_SLOPE = 0.1

DiscOutput = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack then a 1-channel output conv; every activation is kept for feature matching."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return x, features


def _run_all(discriminators: nn.ModuleList, audio: torch.Tensor) -> DiscOutput:
    outs = [d(audio) for d in discriminators]
    return [logits for logits, _ in outs], [features for _, features in outs]


class PeriodDiscriminator(nn.Module):
    """Looks at every `period`-th sample: audio (B, T) -> logits (B, N), features."""

    def __init__(self, period: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.period = period
        chans = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(cin, cout, (5, 1), (3 if i < len(channels) - 1 else 1, 1), padding=(2, 0)))
            for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:]))
        )
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pad = (-audio.shape[-1]) % self.period
        x = F.pad(audio, (0, pad), mode="reflect" if pad < audio.shape[-1] else "constant")
        # Fold time into (T / period, period) so 2-D convs see one phase per column.
        x, features = _conv_stack(self.convs, self.post, rearrange(x, "b (t p) -> b 1 t p", p=self.period))
        return rearrange(x, "b 1 t p -> b (t p)"), features


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), channels: tuple[int, ...] = (16, 64, 128, 256)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, audio: torch.Tensor) -> DiscOutput:
        return _run_all(self.discriminators, audio)


class ResolutionDiscriminator(nn.Module):
    """2-D convs over one STFT magnitude: audio (B, T) -> logits (B, N), features."""

    window: torch.Tensor  # buffer

    def __init__(self, n_fft: int, hop_length: int, channels: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.convs = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
            ]
        )
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.autocast(audio.device.type, enabled=False):
            spec = torch.stft(audio.float(), self.n_fft, self.hop_length, window=self.window, return_complex=True).abs()
        # (B, freq, frames) -> (B, 1, frames, freq): strides run along frequency.
        x, features = _conv_stack(self.convs, self.post, rearrange(spec, "b f t -> b 1 t f"))
        return rearrange(x, "b 1 t f -> b (t f)"), features


class MultiResolutionDiscriminator(nn.Module):
    def __init__(
        self,
        resolutions: tuple[tuple[int, int], ...] = ((1024, 256), (2048, 512), (512, 128)),
        channels: int = 32,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(ResolutionDiscriminator(n, h, channels) for n, h in resolutions)

    def forward(self, audio: torch.Tensor) -> DiscOutput:
        return _run_all(self.discriminators, audio)


class Discriminators(nn.Module):
    """Both discriminators as one module (one optimiser, one state dict)."""

    def __init__(
        self,
        periods: tuple[int, ...],
        period_channels: tuple[int, ...],
        resolutions: tuple[tuple[int, int], ...],
        resolution_channels: int,
    ) -> None:
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(periods, period_channels)
        self.mrd = MultiResolutionDiscriminator(resolutions, resolution_channels)

    def forward(self, audio: torch.Tensor) -> DiscOutput:
        """audio (B, T) -> (logits of every sub-discriminator, their feature maps)."""
        logits_p, feats_p = self.mpd(audio)
        logits_r, feats_r = self.mrd(audio)
        return logits_p + logits_r, feats_p + feats_r


class MelPatchDiscriminator(nn.Module):
    """Judges patches of standardised log-mels: mel (B, n_mels, F) -> logits (B, N), features.

    Strided 2-D convolutions over the spectrogram as an image (stride 2 on
    both axes per layer); with three layers and the 3x3 output conv each
    logit sees 31 bins by 31 frames (0.36 s): harmonics, formant edges and
    onsets in context, the texture a decoder predicting a mean smooths away. Not a vocoder part;
    the VAE's training loop uses it (training/adversarial.py).
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        chans = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(cin, cout, 3, stride=2, padding=1)) for cin, cout in zip(chans[:-1], chans[1:])
        )
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, 3, padding=1))

    def forward(self, mel: torch.Tensor) -> DiscOutput:
        x, features = _conv_stack(self.convs, self.post, rearrange(mel, "b m f -> b 1 m f"))
        return [rearrange(x, "b 1 m f -> b (m f)")], [features]
