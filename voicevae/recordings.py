"""A user's raw recordings -> clean utterances to adapt on.

    utterances = prepare_recordings(["memo.m4a.wav", "folder/"], sample_rate=22050)

People record in long takes, at any level, with pauses and room tone. The
model was trained on single utterances with little silence at a fixed
loudness, so each file is

1. read at the boundary (`audio.load_audio`: mono float32 at the model rate);
2. split where it falls silent (librosa.effects.split, `top_db` below the
   file's peak), joining pieces separated by short pauses and cutting long
   stretches into utterances of at most `max_seconds`;
3. loudness-normalised to `target_lufs` (ITU-R BS.1770 via
   torchaudio.functional.loudness), with peaks kept below full scale;
4. given `pad_seconds` of silence on each side, as the training clips have.

Pieces shorter than `min_seconds` (clicks, breaths) are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
import torchaudio

from .audio import AudioError, load_audio
from .batch import collect_inputs


@dataclass
class Utterance:
    """One cleaned utterance: audio (T,) float32 at the model rate and the file it came from."""

    audio: torch.Tensor
    source: Path

    @property
    def samples(self) -> int:
        return int(self.audio.shape[0])


@dataclass
class RecordingSettings:
    top_db: float = 40.0  # quieter than the peak by this much counts as silence
    join_gap_seconds: float = 0.35  # pauses shorter than this stay inside an utterance
    max_seconds: float = 10.0
    min_seconds: float = 0.6
    pad_seconds: float = 0.05
    # The synthetic training clips (RMS 0.05) measure -26 LUFS (median of 16,
    # -27.1 to -25.6): recordings are brought to the level the model knows.
    target_lufs: float = -26.0


def speech_intervals(wav: np.ndarray, sample_rate: int, settings: RecordingSettings) -> list[tuple[int, int]]:
    """[start, end) sample ranges of speech: non-silent spans, short pauses joined, long spans cut."""
    spans = librosa.effects.split(wav, top_db=settings.top_db, frame_length=1024, hop_length=256)
    joined: list[list[int]] = []
    gap = int(settings.join_gap_seconds * sample_rate)
    for start, end in spans.tolist():
        if joined and start - joined[-1][1] < gap:
            joined[-1][1] = end
        else:
            joined.append([start, end])
    longest = int(settings.max_seconds * sample_rate)
    out = []
    for start, end in joined:
        # A span longer than max_seconds is cut into equal pieces, each under the limit.
        pieces = -(-(end - start) // longest)
        bounds = np.linspace(start, end, pieces + 1).astype(int)
        out += [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    shortest = int(settings.min_seconds * sample_rate)
    return [(a, b) for a, b in out if b - a >= shortest]


def normalize_loudness(wav: torch.Tensor, sample_rate: int, target_lufs: float) -> torch.Tensor:
    """Scale (T,) to `target_lufs` integrated loudness; peaks stay at or below 0.99."""
    # BS.1770 gating needs at least one 400 ms block.
    if wav.shape[0] < int(0.4 * sample_rate):
        rms = wav.square().mean().sqrt().clamp(min=1e-8)
        gain = 10 ** (target_lufs / 20) / rms  # for speech, LUFS and dBFS RMS are within a dB or two
    else:
        lufs = float(torchaudio.functional.loudness(wav[None], sample_rate))
        gain = torch.tensor(10 ** ((target_lufs - lufs) / 20)) if np.isfinite(lufs) else torch.tensor(1.0)
    out = wav * gain
    peak = float(out.abs().max())
    return out * (0.99 / peak) if peak > 0.99 else out


def prepare_recordings(
    items: Sequence[str | Path | torch.Tensor], sample_rate: int, settings: RecordingSettings | None = None
) -> list[Utterance]:
    """Files, folders or (T,) tensors at `sample_rate` -> cleaned utterances, in input order."""
    settings = settings or RecordingSettings()
    sources: list[tuple[Path, torch.Tensor]] = []
    for i, item in enumerate(items):
        if isinstance(item, torch.Tensor):
            if item.ndim != 1:
                raise AudioError(f"clip {i}: expected (T,) mono audio at {sample_rate} Hz, got shape {tuple(item.shape)}")
            sources.append((Path(f"<clip {i}>"), item.float()))
        else:
            sources += [(p, load_audio(p, sample_rate)) for p, _ in collect_inputs([item])]
    pad = torch.zeros(int(settings.pad_seconds * sample_rate))
    utterances = []
    for path, wav in sources:
        if not torch.isfinite(wav).all():
            raise AudioError(f"{path}: contains NaN or infinite samples")
        for start, end in speech_intervals(wav.numpy(), sample_rate, settings):
            piece = normalize_loudness(wav[start:end], sample_rate, settings.target_lufs)
            utterances.append(Utterance(torch.cat([pad, piece, pad]), path))
    return utterances


def total_seconds(utterances: Sequence[Utterance], sample_rate: int) -> float:
    return sum(u.samples for u in utterances) / sample_rate
