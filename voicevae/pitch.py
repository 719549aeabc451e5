"""Pitch: F0 tracking (librosa's pYIN), per-speaker F0 statistics, and pitch shifting.

    stats = f0_stats([wav1, wav2], rate)          # {"median_hz": 118.0, "std_semitones": 2.1, "voiced_s": 41.3, ...}
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

import math
import warnings
from collections.abc import Sequence

import librosa
import numpy as np
import torch

INTONATION_CHANNELS = 3  # log-F0 relative to the clip's mean (octaves), voicing, the clip's mean log2 F0
MELODY_CHANNELS = 2  # the first two: what the decoder's melody input reads (the register comes from z_s)

TRACK_RATE = 16000
TRACK_HOP = TRACK_RATE // 100  # 10 ms frames
F0_MIN_HZ, F0_MAX_HZ = 50.0, 600.0
MIN_VOICED_FRAMES = 10  # fewer voiced frames than this measure no pitch statistics


def f0_contour(wav: torch.Tensor | np.ndarray, rate: int) -> np.ndarray:
    """(T,) audio -> F0 in Hz per 10 ms frame, NaN where unvoiced."""
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    x = librosa.resample(x.astype(np.float32), orig_sr=rate, target_sr=TRACK_RATE) if rate != TRACK_RATE else x
    f0, voiced, _ = librosa.pyin(x, fmin=F0_MIN_HZ, fmax=F0_MAX_HZ, sr=TRACK_RATE, frame_length=1024, hop_length=160)
    return np.where(voiced & np.isfinite(f0), f0, np.nan)


def f0_stats(clips: Sequence[torch.Tensor | np.ndarray], rate: int) -> dict[str, float]:
    """Median F0 (Hz) and spread (std of log2 F0, in semitones) over the voiced frames of all clips (pYIN),
    and the melody spread `melody_octaves` (`melody_spread`: RAPT, each clip about its own mean; NaN
    when RAPT finds too little voicing)."""
    f0 = np.concatenate([f0_contour(c, rate) for c in clips])
    voiced = f0[np.isfinite(f0)]
    if voiced.size < MIN_VOICED_FRAMES:
        raise ValueError(f"too little voiced speech to measure pitch ({voiced.size} voiced frames)")
    semis = 12 * np.log2(voiced)
    try:
        melody = melody_spread(clips, rate)
    except (ValueError, ImportError):  # no melody spread is no reason to refuse the rest (match_pitch)
        melody = math.nan
    return {
        "median_hz": float(np.median(voiced)),
        "std_semitones": float(semis.std()),
        "voiced_s": voiced.size * 0.01,
        "melody_octaves": melody,
    }


def melody_spread(clips: Sequence[torch.Tensor | np.ndarray], rate: int) -> float:
    """How widely a voice's melody moves: the std (octaves) of log2 F0 about each clip's own mean,
    over the voiced frames of all clips.

    This is the spread of the decoder's melody input (`intonation` row 0,
    the same tracker), not of pYIN's F0 pooled over clips, which counts the
    register's drift from clip to clip too; `f0_spread` scales a source's
    melody toward it.
    """
    deviations = []
    for c in clips:
        f0 = rapt_of(c, rate)
        log_f0 = np.log2(f0[f0 > 0])
        deviations.append(log_f0 - log_f0.mean() if log_f0.size else log_f0)
    pooled = np.concatenate(deviations) if deviations else np.zeros(0)
    if pooled.size < MIN_VOICED_FRAMES:
        raise ValueError(f"too little voiced speech to measure the melody's spread ({pooled.size} voiced frames)")
    return float(pooled.std())


def intonation_spread(pitch: torch.Tensor) -> float | None:
    """The melody spread (octaves, as `melody_spread`) of an intonation (..., 3, F): row 0 over the frames
    row 1 marks voiced; None with fewer than MIN_VOICED_FRAMES voiced frames."""
    melody = pitch[..., 0, :][pitch[..., 1, :] > 0.5]
    return float(melody.std()) if melody.numel() >= MIN_VOICED_FRAMES else None


def scale_melody(pitch: torch.Tensor, scale: float) -> torch.Tensor:
    """An intonation (..., 3, F) with its melody (row 0, relative to the clip's mean) scaled by `scale`;
    voicing and register untouched."""
    out = pitch.clone()
    out[..., 0, :] *= scale
    return out


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


def _import_pysptk():
    try:
        with warnings.catch_warnings():  # pysptk imports pkg_resources, which warns that it is deprecated
            warnings.simplefilter("ignore", UserWarning)
            import pysptk  # SPTK's binding; imported here so models without a pitch input never need it
    except ImportError:
        raise ImportError("a model with model.pitch_input needs pysptk: pip install pysptk") from None
    return pysptk


def rapt_f0(x: np.ndarray) -> np.ndarray:
    """(T,) float32 audio at TRACK_RATE -> F0 in Hz per 10 ms frame (frame i at i * 10 ms), 0 where unvoiced."""
    pysptk = _import_pysptk()
    if x.size < 4 * TRACK_HOP:
        return np.zeros(0, dtype=np.float32)
    if x.size % 2:
        # SPTK's RAPT keeps state between calls: after one odd-length signal, every later
        # call in the process tracks a little differently (tests/test_pitch_input.py). One
        # zero sample more keeps every call on the fresh-process path; the frame count,
        # ceil(samples / hop), is the same for an odd length and the even one after it.
        x = np.append(x, np.float32(0.0))
    # RAPT's voicing thresholds assume 16-bit sample values.
    f0 = pysptk.rapt(
        np.ascontiguousarray(x * 32767.0, dtype=np.float32),
        fs=TRACK_RATE,
        hopsize=TRACK_HOP,
        min=F0_MIN_HZ,
        max=F0_MAX_HZ,
        otype="f0",
    )
    return np.asarray(f0, dtype=np.float32)


def to_track_rate(x: np.ndarray, rate: int) -> np.ndarray:
    x = x.astype(np.float32)
    return librosa.resample(x, orig_sr=rate, target_sr=TRACK_RATE) if rate != TRACK_RATE else x


def rapt_of(wav: torch.Tensor | np.ndarray, rate: int) -> np.ndarray:
    """(T,) audio at `rate` -> RAPT's F0 per 10 ms frame of the whole clip (`rapt_f0`)."""
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    return rapt_f0(to_track_rate(x, rate))


def contour(
    f0: np.ndarray, frames: int, rate: int, hop_length: int, first_frame: int = 0, f0_start: int = 0, mean: float | None = None
) -> torch.Tensor:
    """RAPT frames -> the intonation (3, frames) of mel frames first_frame .. first_frame + frames - 1.

    f0[j] is track frame f0_start + j (10 ms apart, 0 where unvoiced); mel
    frame f is centred at (f + 1/2) hops of `hop_length` samples at `rate`
    (features.MelFrontend's framing). Row 0: log2 F0 minus `mean` (by
    default the mean over the voiced frames given), carried across unvoiced
    gaps by linear interpolation so the decoder sees a continuous melody; row
    1: 1 where RAPT finds voicing, else 0; row 2: `mean`, the register (log2
    Hz, the same in every frame), so row 0 + row 2 is the absolute log2 F0 a
    harmonic source (harmonics.py) needs. No voiced frame gives zeros.
    """
    out = np.zeros((INTONATION_CHANNELS, frames), dtype=np.float32)
    voiced = f0 > 0
    if frames <= 0 or not voiced.any():
        return torch.from_numpy(out)
    track_t = (f0_start + np.arange(f0.size)) * TRACK_HOP / TRACK_RATE
    mel_t = (first_frame + np.arange(frames) + 0.5) * hop_length / rate
    log_f0 = np.log2(f0[voiced])
    register = float(log_f0.mean()) if mean is None else mean
    out[0] = np.interp(mel_t, track_t[voiced], log_f0 - register)
    out[1] = np.interp(mel_t, track_t, voiced.astype(np.float32)) > 0.5
    out[2] = register
    return torch.from_numpy(out)


def intonation(wav: torch.Tensor | np.ndarray, rate: int, frames: int, hop_length: int) -> torch.Tensor:
    """(T,) audio at `rate` -> (3, frames) float32 at the log-mel frame rate (`hop_length` samples at `rate`).

    RAPT on the whole clip, then `contour` with the clip's own mean.
    """
    return contour(rapt_of(wav, rate), frames, rate, hop_length)


class F0Stream:
    """RAPT over a stream of samples, a block at a time (long files, live conversion).

        track = F0Stream(rate)
        track.feed(block)              # samples at `rate`, any number at a time
        track.final                    # F0 of frames 0 .. n-1 (10 ms apart), settled
        track.provisional()            # F0 of the frames after them, from the samples so far

    RAPT is a dynamic programme over the whole signal; here each stretch of
    `span` seconds is tracked with `context` seconds of signal on each side
    and only its own frames are kept, so a frame comes out as tracking the
    whole signal gives it unless the best path changes over more than the
    context (tests/test_pitch_stream.py bounds how often). Frames are
    settled once `context` seconds after them are in; `provisional` tracks
    the rest without that right context, as a live stream must.
    Windows start on sample multiples that are also whole 10 ms frames
    (441 samples at 22050 Hz), so every window's frames fall on one grid.
    """

    def __init__(self, rate: int, span: float = 2.0, context: float = 0.5, keep: float | None = None) -> None:
        self.rate = rate
        self.grid = rate // math.gcd(rate, 100)  # samples per whole number of 10 ms frames
        self.span = max(1, round(span * rate / self.grid)) * self.grid
        self.context = max(1, math.ceil(context * rate / self.grid)) * self.grid
        self.keep = keep  # seconds of settled F0 to hold (None: all, for a whole file's contour)
        self.samples = np.zeros(0, dtype=np.float32)  # from absolute sample `start` on
        self.start = 0
        self.settled = 0  # samples whose frames are settled (a multiple of grid)
        self.final = np.zeros(0, dtype=np.float32)  # from track frame `final_start` on
        self.final_start = 0
        self.ended = False
        self.log_sum, self.log_count = 0.0, 0  # over the settled voiced frames

    @property
    def mean_log_f0(self) -> float | None:
        """Mean log2 F0 of the settled voiced frames (the register so far); None before the first."""
        return self.log_sum / self.log_count if self.log_count else None

    @property
    def seen(self) -> int:
        """Samples fed so far."""
        return self.start + self.samples.size

    @property
    def frames_settled(self) -> int:
        return self.final_start + self.final.size

    def feed(self, x: torch.Tensor | np.ndarray, last: bool = False) -> None:
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        self.samples = np.concatenate([self.samples, x.astype(np.float32).reshape(-1)])
        end = self.start + self.samples.size
        while self.settled + self.span + self.context <= end:
            self._settle(self.settled + self.span)
        if last:
            self.ended = True
            if end > self.settled:
                self._settle(end)

    def _track(self, lo: int, hi: int) -> np.ndarray:
        """F0 of the track frames from sample `lo` (on the grid) on, from samples [lo, hi)."""
        return rapt_f0(to_track_rate(self.samples[lo - self.start : hi - self.start], self.rate))

    def _settle(self, upto: int) -> None:
        lo = max(0, self.settled - self.context)
        hi = min(self.start + self.samples.size, upto + self.context)
        f0 = self._track(lo, hi)
        first = lo * 100 // self.rate  # track frame of f0[0]
        want_lo = self.settled * 100 // self.rate
        if self.ended:  # the signal's end: every frame RAPT gives, as on the whole signal
            piece = f0[want_lo - first :]
        else:
            want_hi = -(-upto * 100 // self.rate)  # frames at times before upto
            piece = np.zeros(want_hi - want_lo, dtype=np.float32)
            got = f0[want_lo - first : want_hi - first]
            piece[: got.size] = got
        self.final = np.concatenate([self.final, piece])
        self.settled = upto
        voiced = piece[piece > 0]
        self.log_sum, self.log_count = self.log_sum + float(np.log2(voiced).sum()), self.log_count + voiced.size
        # Keep the left context the next window needs; drop the rest.
        drop = max(0, self.settled - self.context) - self.start
        if drop > 0:
            self.samples, self.start = self.samples[drop:], self.start + drop
        if self.keep is not None:
            excess = self.final.size - int(self.keep * 100)
            if excess > 0:
                self.final, self.final_start = self.final[excess:], self.final_start + excess

    def provisional(self) -> np.ndarray:
        """F0 of the frames after the settled ones, tracked on the samples so far (no right context)."""
        end = self.start + self.samples.size
        if self.ended or end <= self.settled:
            return np.zeros(0, dtype=np.float32)
        lo = max(self.start, self.settled - self.context)  # both on the grid
        f0 = self._track(lo, end)
        return f0[self.frames_settled - lo * 100 // self.rate :]
