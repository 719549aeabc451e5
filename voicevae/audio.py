"""Audio at the boundary: every clip enters the toolkit through `load_audio`.

It returns mono float32 at the model's rate or raises `AudioError` naming the
file and what is wrong. Nothing past this point needs to care about channels,
sample formats or rates.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from .checkpoint import atomic_write

# Sample rates accepted at input; outside this band is almost surely a mistake
# (a wrong header, a raw file) rather than speech.
MIN_RATE, MAX_RATE = 8000, 192000

# File suffixes taken as audio wherever a folder is searched for clips (corpus
# scanning, `voicevae convert` inputs, vocoder evaluation): the formats
# soundfile reads, so every file found can go through `load_audio`. MP3 needs
# libsndfile >= 1.1, which the soundfile wheels bundle.
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class AudioError(ValueError):
    """A clip could not be read or is unusable as speech."""


def to_model_audio(wav: np.ndarray | torch.Tensor, rate: int, target_rate: int, name: str = "audio") -> torch.Tensor:
    """Convert samples to mono float32 at `target_rate`.

    wav: (T,) or (T, C) as soundfile returns, or (C, T) for torch tensors with
    C <= 8 channels. Returns (T',).
    """
    x = torch.as_tensor(np.asarray(wav) if not isinstance(wav, torch.Tensor) else wav)
    if x.dtype != torch.float32:
        x = x.to(torch.float32)
    if x.ndim == 2:
        # soundfile gives (T, C); treat the short axis as channels.
        ch_axis = 1 if x.shape[1] <= x.shape[0] else 0
        x = x.mean(dim=ch_axis)
    if x.ndim != 1:
        raise AudioError(f"{name}: expected mono or multi-channel audio, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{name}: sample rate {rate} Hz outside {MIN_RATE}..{MAX_RATE} Hz")
    if rate != target_rate:
        x = AF.resample(x, rate, target_rate)
    return x.contiguous()


def load_audio(path: str | os.PathLike, target_rate: int) -> torch.Tensor:
    """Read any soundfile-supported file as mono float32 at `target_rate`. Returns (T,)."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(
            f"{path}: is a folder; convert one clip at a time here, or a folder with convert_files / `voicevae convert`"
        )
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        wav, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as e:  # soundfile raises several types for corrupt input
        raise AudioError(f"{path}: cannot read audio ({e})") from e
    if wav.size == 0:
        raise AudioError(f"{path}: file holds no samples")
    return to_model_audio(wav, rate, target_rate, str(path))


# Output formats by file suffix: what soundfile writes, each with its usual encoding.
_FORMATS: dict[str, dict[str, str]] = {
    "wav": {"format": "WAV", "subtype": "PCM_16"},
    "flac": {"format": "FLAC", "subtype": "PCM_16"},
    "ogg": {"format": "OGG", "subtype": "VORBIS"},
}
OUTPUT_FORMATS = tuple(_FORMATS)


def output_format(path: Path) -> dict[str, str]:
    """soundfile's format and subtype for an output file, from its suffix; AudioError for others."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in _FORMATS:
        raise AudioError(f"{path}: cannot write {path.suffix or 'files without a suffix'}; choose .{', .'.join(OUTPUT_FORMATS)}")
    return _FORMATS[fmt]


def save_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, rate: int, overwrite: bool = False) -> Path:
    """Write (T,) float audio atomically, as the suffix says (.wav 16-bit PCM, .flac, .ogg Vorbis); refuses to overwrite unless asked.

    The file gets the mode the umask gives any new file.
    """
    path = Path(path)
    fmt = output_format(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass overwrite=True (or --force) to replace it")
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    x = np.clip(x.astype(np.float32).reshape(-1), -1.0, 1.0)
    with atomic_write(path, path.suffix) as tmp:
        sf.write(tmp, x, rate, **fmt)
    return path
