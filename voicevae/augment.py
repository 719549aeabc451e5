"""Speaker perturbation of the content encoder's input (training only).

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
from einops import rearrange


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


def random_warp(mel: torch.Tensor, max_ratio: float) -> torch.Tensor:
    """`warp_mel` with alpha log-uniform in [1/(1 + max_ratio), 1 + max_ratio] per clip."""
    if max_ratio <= 0:
        return mel
    span = math.log1p(max_ratio)
    alpha = torch.exp((2 * torch.rand(mel.shape[0], device=mel.device) - 1) * span)
    return warp_mel(mel, alpha)
