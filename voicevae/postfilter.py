"""Formant sharpening of decoded log-mels: the cepstral postfilter of statistical speech synthesis.

A Gaussian decoder renders the mean of the spectra a latent allows, so its
formant peaks come out flatter than speech has them: the over-smoothing that
HMM-based synthesis met too, and answered with a postfilter that deepens the
peaks and valleys of each frame's spectral envelope by scaling its cepstrum
(Koishida et al. 1995, the postfilter of the HTS and Merlin toolkits). Here a
log-mel frame's orthonormal DCT-II stands for its cepstrum; coefficients from
c2 on are scaled by 1 + beta, while c0 (the level) and c1 (the overall tilt)
stay, so loudness and brightness do not move.

Each frame is changed alone and linearly, so the postfilter is one constant
(n_mels, n_mels) matrix: it costs a matrix product, streams frame by frame
with no lookahead, and is a constant inside traced and exported graphs.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
import scipy.fft
import torch
from einops import einsum

KEPT = 2  # cepstral coefficients left alone: c0 (level) and c1 (tilt)
# The converter's default (README, "Sharper formants: `postfilter`").
DEFAULT_POSTFILTER = 0.0


@functools.cache
def _matrix(n_mels: int, beta: float) -> np.ndarray:
    dct = scipy.fft.dct(np.eye(n_mels), axis=0, norm="ortho")  # dct @ frame = the frame's DCT-II
    gain = np.ones(n_mels)
    gain[KEPT:] += beta
    # An orthonormal DCT's inverse is its transpose.
    return (dct.T @ np.diag(gain) @ dct).astype(np.float32)


def check(beta: float, name: str = "postfilter") -> None:
    """Refuse a postfilter outside [0, 2] by the setting's name."""
    if not 0.0 <= beta <= 2.0:
        raise ValueError(f"{name} must be in [0, 2], got {beta:g}")


def postfilter_matrix(n_mels: int, beta: float) -> torch.Tensor:
    """The postfilter as a matrix (n_mels, n_mels): sharpened frame = matrix @ frame.

    A new tensor each call (from a cached array): one made under inference
    mode could not join a graph that records gradients later.
    """
    check(beta)
    return torch.from_numpy(_matrix(int(n_mels), float(beta)).copy())


def sharpen(mel: torch.Tensor, beta: float) -> torch.Tensor:
    """Log-mel (..., n_mels, F) with each frame's cepstrum from c2 on scaled by 1 + beta -> same shape."""
    if not beta:
        return mel
    # int(): inside a traced graph a size is a tensor, which would key the cache afresh each trace.
    m = postfilter_matrix(int(mel.shape[-2]), beta).to(mel.device, mel.dtype)
    return einsum(m, mel, "i j, ... j f -> ... i f")


def add_argument(p: argparse.ArgumentParser) -> None:
    """The commands' --postfilter option."""
    p.add_argument(
        "--postfilter",
        type=float,
        default=DEFAULT_POSTFILTER,
        metavar="B",
        help=f"formant sharpening of the decoded log-mel, 0 (off) to 2 (default {DEFAULT_POSTFILTER:g})",
    )
