"""The harmonic comb: the log-mel ripple a voice's harmonics leave at a given F0.

    comb = HarmonicComb(mel_config)
    ripple = comb(log2_f0, voiced)      # (B, F), (B, F) -> (B, n_mels, F)

Below about 1 kHz the mel bins are narrower than the spacing of a voice's
harmonics, so a voiced log-mel frame has a peak at every harmonic and a
trough between. A decoder that predicts the mean of p(x | z) blurs that
ripple away whenever it is unsure of F0 to a few percent, and a vocoder fed
the blurred frame renders noise instead of a voice
(`benchmarks/voicing_check.py`: a one-bin blur along the mel axis takes the
vocoder's voiced share from 0.62 to 0.21, as the decoder's output does).

The comb gives the decoder that ripple ready-made, the source of a
source-filter model: the decoder predicts how deep it runs (the filter and
the breathiness), not where the harmonics fall. Each F0 row of the table is
the analysis of a steady tone with equal harmonics up to f_max through the
model's own front end (features.MelFrontend), minus the average of such rows
over the octave of F0 around it, so the comb carries only where the
harmonics are, not the spectral tilt a flat tone has. Rows lie 1/96 octave
apart and are interpolated linearly in log F0; unvoiced frames get zeros.
"""

from __future__ import annotations

import functools

import torch
from einops import rearrange
from torch import nn

from .config import MelConfig, to_dict
from .features import MelFrontend

F0_LOW_HZ, F0_HIGH_HZ = 40.0, 640.0  # beyond the trackers' 50-600 Hz, so every tracked F0 has rows both sides
STEPS_PER_OCTAVE = 96
TONE_FRAMES = 6  # the tone lasts this many hops past one window; the middle four frames are averaged


@functools.lru_cache(maxsize=4)
def _table(mel_items: tuple) -> torch.Tensor:
    """(rows, n_mels) comb table for the mel settings `mel_items` (MelConfig as sorted items)."""
    config = MelConfig(**dict(mel_items))
    frontend = MelFrontend(config)
    rate, lo, hi = config.sample_rate, torch.tensor(F0_LOW_HZ).log2(), torch.tensor(F0_HIGH_HZ).log2()
    rows = int(round(float(hi - lo) * STEPS_PER_OCTAVE)) + 1
    f0 = 2 ** torch.linspace(float(lo), float(hi), rows, dtype=torch.float64)
    t = torch.arange((TONE_FRAMES + 1) * config.hop_length + config.n_fft, dtype=torch.float32) / rate
    gen = torch.Generator().manual_seed(0)  # fixed phases: the table is the same on every machine
    tones = []
    for f in f0:
        k = torch.arange(1, int(min(config.f_max, rate / 2) / f) + 1, dtype=torch.float32)
        phase = 2 * torch.pi * torch.rand(k.shape, generator=gen)
        # Random phases keep the tone's peak low; the magnitude spectrum barely depends on them.
        tones.append(torch.cos(2 * torch.pi * float(f) * k[:, None] * t + phase[:, None]).sum(0) / k.numel() ** 0.5)
    with torch.no_grad():
        logmel = frontend(torch.stack(tones))  # (rows, n_mels, frames)
    mid = logmel.shape[-1] // 2
    table = logmel[..., mid - 2 : mid + 2].mean(-1)  # (rows, n_mels)
    # Minus the average over the surrounding octave of F0 (rows clipped at the ends).
    half = STEPS_PER_OCTAVE // 2
    padded = torch.cat([table[:1].expand(half, -1), table, table[-1:].expand(half, -1)])
    smooth = padded.unfold(0, 2 * half + 1, 1).mean(-1)  # (rows, n_mels)
    return (table - smooth).contiguous()


class HarmonicComb(nn.Module):
    """Log-mel ripple of equal harmonics at F0: log2 F0 (B, F), voicing (B, F) in [0, 1] -> (B, n_mels, F).

    The table is computed from the mel settings (cached per setting), not
    stored in checkpoints: it is a function of them.
    """

    table: torch.Tensor

    def __init__(self, mel_config: MelConfig) -> None:
        super().__init__()
        self.register_buffer("table", _table(tuple(sorted(to_dict(mel_config).items()))).clone(), persistent=False)
        self.low = float(torch.tensor(F0_LOW_HZ).log2())

    def forward(self, log2_f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        rows = self.table.shape[0]
        position = ((log2_f0.float() - self.low) * STEPS_PER_OCTAVE).clamp(0, rows - 1.001)
        index = position.floor().long()
        frac = (position - index)[..., None]  # (B, F, 1)
        ripple = self.table[index] * (1 - frac) + self.table[index + 1] * frac  # (B, F, n_mels)
        return rearrange(ripple * voiced[..., None].to(ripple.dtype), "b f m -> b m f")
