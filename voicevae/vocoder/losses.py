"""Vocoder training losses, each returning a scalar tensor.

Reconstruction: mel L1 (in the front end's log-mel space), an optional
multi-scale mel L1 at other window lengths, a multi-resolution STFT loss
(spectral convergence + log-magnitude L1) and anti-wrapping losses on the
predicted phase.
Adversarial: hinge or least-squares GAN losses and feature matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MelConfig
from ..features import MelFrontend


class MelL1Loss(nn.Module):
    """Mean |logmel(fake) - target_logmel|; fake (B, T), target (B, n_mels, F)."""

    def __init__(self, mel_config: MelConfig) -> None:
        super().__init__()
        self.frontend = MelFrontend(mel_config)

    def forward(self, fake: torch.Tensor, target_logmel: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.frontend(fake.float()), target_logmel.float())


class MultiScaleMelLoss(nn.Module):
    """Mean log-mel L1 over several (n_fft, hop, n_mels) analyses; fake, real (B, T).

    The front end's mel loss looks through one 46 ms window: it hears pitch
    finely but smears timing within the window, while the speaker encoder
    and a listener also work at ~25 ms. Several analyses supervise several
    time/frequency trade-offs at once (DAC's multi-scale mel loss, Kumar et
    al., 2023); fewer mels for shorter windows keep each band wider than the
    window's frequency resolution.
    """

    def __init__(self, mel_config: MelConfig, scales: tuple[tuple[int, int, int], ...]) -> None:
        super().__init__()
        # Each scale is the front end's own analysis with another window, hop and band count.
        self.frontends = nn.ModuleList(MelFrontend(mel_config.scaled(*scale)) for scale in scales)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        total = fake.new_zeros(())
        for frontend in self.frontends:
            total = total + F.l1_loss(frontend(fake.float()), frontend(real.float()))
        return total / len(self.frontends)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence and log-magnitude L1 averaged over STFT resolutions.

    fake, real: (B, T). Returns (sc, mag). Several resolutions, because one
    window trades time for frequency resolution and the generator would
    exploit whichever it does not see.
    """

    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))) -> None:
        super().__init__()
        self.resolutions = tuple(resolutions)
        for n_fft, _ in self.resolutions:
            self.register_buffer(f"window_{n_fft}", torch.hann_window(n_fft), persistent=False)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sc = mag = fake.new_zeros(())
        for n_fft, hop in self.resolutions:
            window = getattr(self, f"window_{n_fft}")
            s_fake = torch.stft(fake.float(), n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-7)
            s_real = torch.stft(real.float(), n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-7)
            sc = sc + torch.linalg.norm(s_real - s_fake) / torch.linalg.norm(s_real).clamp_min(1e-7)
            mag = mag + F.l1_loss(s_fake.log(), s_real.log())
        n = len(self.resolutions)
        return sc / n, mag / n


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """|x| after wrapping x to [-pi, pi]: the distance between two angles whose difference is x."""
    return (x - 2 * torch.pi * torch.round(x / (2 * torch.pi))).abs()


def phase_losses(
    fake_phase: torch.Tensor, real_phase: torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anti-wrapping phase losses (Ai & Ling, APNet, 2023); phases (B, n_freqs, F) in radians.

    Returns (ip, gd, iaf): the mean wrapped distance of the instantaneous
    phase, of its difference across frequency (group delay) and of its
    difference across frames (instantaneous angular frequency). Magnitude
    losses see phase only through the overlap-add of neighbouring frames, a
    weak and slow signal; without a GAN these give the vocoder a direct one.
    The two differences matter because a constant phase offset is inaudible
    while a wrong slope across frequency or time smears the waveform.

    weight (B, n_freqs, F) >= 0, optional, turns each mean into a weighted
    mean: the phase of a bin that holds only noise is unpredictable, and a
    magnitude weight stops those bins from drowning out the harmonics.
    """

    def mean(error: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        return error.mean() if w is None else (w * error).sum() / w.sum().clamp_min(1e-12)

    # A difference between two bins is weighted by the mean of their weights.
    w_freq = None if weight is None else (weight[:, 1:] + weight[:, :-1]) / 2
    w_time = None if weight is None else (weight[..., 1:] + weight[..., :-1]) / 2
    ip = mean(anti_wrap(fake_phase - real_phase), weight)
    gd = mean(anti_wrap(torch.diff(fake_phase, dim=1) - torch.diff(real_phase, dim=1)), w_freq)
    iaf = mean(anti_wrap(torch.diff(fake_phase, dim=2) - torch.diff(real_phase, dim=2)), w_time)
    return ip, gd, iaf


def discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor], kind: str) -> torch.Tensor:
    """Loss of the discriminators: push real up, fake down. kind: "hinge" or "lsgan"."""
    total = real_logits[0].new_zeros(())
    for r, f in zip(real_logits, fake_logits):
        if kind == "hinge":
            total = total + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            total = total + (1 - r).square().mean() + f.square().mean()
    return total / len(real_logits)


def generator_loss(fake_logits: list[torch.Tensor], kind: str) -> torch.Tensor:
    """Adversarial loss of the generator: make the discriminators call fake real."""
    total = fake_logits[0].new_zeros(())
    for f in fake_logits:
        total = total + (F.relu(1 - f).mean() if kind == "hinge" else (1 - f).square().mean())
    return total / len(fake_logits)


def feature_matching_loss(real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between discriminator activations on real and fake audio, per layer."""
    total = fake_features[0][0].new_zeros(())
    count = 0
    for rs, fs in zip(real_features, fake_features):
        for r, f in zip(rs, fs):
            total = total + F.l1_loss(f, r.detach())
            count += 1
    return total / count
