"""Pitch: F0 tracking (librosa's pYIN), per-speaker F0 statistics, and pitch shifting.

    stats = f0_stats([wav1, wav2], rate)          # {"median_hz": 118.0, "std_semitones": 2.1, "voiced_s": 41.3}
    semitones = semitones_between(source_stats, target_stats)
    shifted = pitch_shift(wav, rate, semitones)

Speaker F0 statistics live in the vector file (VectorSet.f0) so `match_pitch`
can move a conversion's pitch range to the target's. The tracker runs at
16 kHz with a 10 ms hop: F0 needs no more bandwidth, and pYIN's cost grows
with the rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import librosa
import numpy as np
import torch

TRACK_RATE = 16000
F0_MIN_HZ, F0_MAX_HZ = 50.0, 600.0


def f0_contour(wav: torch.Tensor | np.ndarray, rate: int) -> np.ndarray:
    """(T,) audio -> F0 in Hz per 10 ms frame, NaN where unvoiced."""
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    x = librosa.resample(x.astype(np.float32), orig_sr=rate, target_sr=TRACK_RATE) if rate != TRACK_RATE else x
    f0, voiced, _ = librosa.pyin(x, fmin=F0_MIN_HZ, fmax=F0_MAX_HZ, sr=TRACK_RATE, frame_length=1024, hop_length=160)
    return np.where(voiced & np.isfinite(f0), f0, np.nan)


def f0_stats(clips: Sequence[torch.Tensor | np.ndarray], rate: int) -> dict[str, float]:
    """Median F0 (Hz) and spread (std of log2 F0, in semitones) over the voiced frames of all clips."""
    f0 = np.concatenate([f0_contour(c, rate) for c in clips])
    voiced = f0[np.isfinite(f0)]
    if voiced.size < 10:
        raise ValueError(f"too little voiced speech to measure pitch ({voiced.size} voiced frames)")
    semis = 12 * np.log2(voiced)
    return {"median_hz": float(np.median(voiced)), "std_semitones": float(semis.std()), "voiced_s": voiced.size * 0.01}


def median_f0(wav: torch.Tensor | np.ndarray, rate: int) -> float:
    """Median F0 in Hz over the voiced frames of one clip; NaN when nothing is voiced."""
    f0 = f0_contour(wav, rate)
    voiced = f0[np.isfinite(f0)]
    return float(np.median(voiced)) if voiced.size else float("nan")


def semitones_between(from_hz: float, to_hz: float) -> float:
    """The shift in semitones that moves F0 `from_hz` to `to_hz`."""
    return float(12 * np.log2(to_hz / from_hz))


def pitch_shift(wav: torch.Tensor, rate: int, semitones: float) -> torch.Tensor:
    """(T,) -> (T,) with every frequency scaled by 2^(semitones/12) (librosa: time stretch + resample)."""
    if semitones == 0:
        return wav
    y = librosa.effects.pitch_shift(wav.detach().cpu().numpy().astype(np.float32), sr=rate, n_steps=float(semitones))
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
