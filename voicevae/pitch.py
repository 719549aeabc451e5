"""Pitch: F0 tracking (librosa's pYIN), per-speaker F0 statistics, and pitch shifting.

    stats = f0_stats([wav1, wav2], rate)          # {"median_hz": 118.0, "std_semitones": 2.1, "voiced_s": 41.3}
    semitones = semitones_between(source_stats, target_stats)
    shifted = pitch_shift(wav, rate, semitones)

Speaker F0 statistics live in the vector file (VectorSet.f0) so `match_pitch`
can move a conversion's pitch range to the target's. The tracker runs at
16 kHz with a 10 ms hop: F0 needs no more bandwidth, and pYIN's cost grows
with the rate.

`intonation` is the decoder's pitch input for a model with
`model.pitch_input` (model.py): the clip's own F0 contour relative to its
mean, so the source gives the melody and the speaker latent the register.
It uses RAPT (SPTK, through pysptk): about 100 times faster than pYIN, which
matters when a whole training corpus is analysed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import librosa
import numpy as np
import torch

INTONATION_CHANNELS = 3  # log-F0 relative to the clip's mean (octaves), voicing, the clip's mean log2 F0
MELODY_CHANNELS = 2  # the first two: what the decoder's melody input reads (the register comes from z_s)

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


def intonation(wav: torch.Tensor | np.ndarray, rate: int, frames: int, hop_length: int) -> torch.Tensor:
    """(T,) audio at `rate` -> (3, frames) float32 at the log-mel frame rate (`hop_length` samples at `rate`).

    Row 0: log2 F0 minus its mean over the clip's voiced frames (octaves),
    carried across unvoiced gaps by linear interpolation so the decoder sees
    a continuous melody; row 1: 1 where RAPT finds voicing, else 0; row 2:
    that mean, the clip's register (log2 Hz, the same in every frame), so row
    0 + row 2 is the absolute log2 F0 a harmonic source (harmonics.py) needs.
    A clip with no voiced frame gives zeros. Mel frame f is centred at
    (f + 1/2) hops (features.MelFrontend's framing).
    """
    try:
        with warnings.catch_warnings():  # pysptk imports pkg_resources, which warns that it is deprecated
            warnings.simplefilter("ignore", UserWarning)
            import pysptk  # SPTK's binding, in the `eval` extra; imported here so other models never need it
    except ImportError:
        raise ImportError("a model with model.pitch_input needs pysptk: pip install 'voicevae[eval]'") from None

    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    x = librosa.resample(x.astype(np.float32), orig_sr=rate, target_sr=TRACK_RATE) if rate != TRACK_RATE else x.astype(np.float32)
    out = np.zeros((INTONATION_CHANNELS, frames), dtype=np.float32)
    hop = TRACK_RATE // 100
    if x.size < 4 * hop:
        return torch.from_numpy(out)
    # RAPT's voicing thresholds assume 16-bit sample values.
    f0 = pysptk.rapt(np.ascontiguousarray(x * 32767.0), fs=TRACK_RATE, hopsize=hop, min=F0_MIN_HZ, max=F0_MAX_HZ, otype="f0")
    voiced = f0 > 0
    if not voiced.any():
        return torch.from_numpy(out)
    track_t = np.arange(f0.size) * hop / TRACK_RATE
    mel_t = (np.arange(frames) + 0.5) * hop_length / rate
    log_f0 = np.log2(f0[voiced])
    out[0] = np.interp(mel_t, track_t[voiced], log_f0 - log_f0.mean())
    out[1] = np.interp(mel_t, track_t, voiced.astype(np.float32)) > 0.5
    out[2] = log_f0.mean()
    return torch.from_numpy(out)
