"""Speech corpora as manifests, and the offline synthetic corpus.

A manifest is the one description of a corpus that the rest of the toolkit
reads: a CSV file with the header `path,speaker,text,split` and any further
columns as labels (`gender`, `engine`, `accent`, ...). `path` is relative to
the manifest's folder, or absolute. `split` is `train`, `valid` (held-out
sentences of training speakers) or `test_voice` (speakers never trained on).

This module writes manifests from four on-disk layouts (`scan_vctk`,
`scan_libritts`, `scan_librispeech`, `scan_folder`, then `assign_splits`)
and synthesises a multi-speaker corpus from the Debian text-to-speech voices
(`make_corpus`), so that the toolkit can be trained with nothing downloaded.
Commands: `voicevae scan` and `voicevae make-corpus`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

from .audio import AudioError, save_audio, to_model_audio

REQUIRED_COLUMNS = ("path", "speaker", "text", "split")
SPLITS = ("train", "valid", "test_voice")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class ManifestError(ValueError):
    """A manifest or corpus layout is malformed; the message names file and row."""


class SynthesisError(ValueError):
    """A text-to-speech program is missing or failed."""


@dataclass
class Utterance:
    """One clip of a corpus.

    path: absolute path of the audio file.
    speaker: speaker id, unique within the corpus.
    text: transcript ("" when the corpus has none for this clip).
    split: "train", "valid" or "test_voice" (other names are allowed).
    labels: further columns of the manifest, e.g. {"gender": "f"}.
    """

    path: Path
    speaker: str
    text: str
    split: str = "train"
    labels: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- manifests


def read_manifest(path: str | os.PathLike, split: str | None = None) -> list[Utterance]:
    """Read a manifest CSV; keep only rows of `split` when given.

    Raises ManifestError naming the file (and line) for a missing file or
    column, a row with the wrong number of fields, an empty speaker, path or
    split, or an audio file that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    root = path.resolve().parent
    out: list[Utterance] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ManifestError(
                f"{path}: missing column(s) {', '.join(missing)}; "
                f"the header must start with {','.join(REQUIRED_COLUMNS)}, got {','.join(header) or 'nothing'}"
            )
        label_names = [c for c in header if c not in REQUIRED_COLUMNS]
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                raise ManifestError(f"{where}: row has a different number of fields than the header")
            for column in ("path", "speaker", "split"):
                if not row[column].strip():
                    raise ManifestError(f"{where}: empty {column}")
            if split is not None and row["split"] != split:
                continue
            audio = Path(row["path"])
            audio = audio if audio.is_absolute() else root / audio
            if not audio.is_file():
                raise ManifestError(f"{where}: audio file not found: {audio}")
            out.append(
                Utterance(
                    path=audio,
                    speaker=row["speaker"],
                    text=row["text"],
                    split=row["split"],
                    labels={name: row[name] for name in label_names},
                )
            )
    return out


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance], overwrite: bool = False) -> Path:
    """Write `utterances` as a manifest CSV, atomically (temp file + os.replace).

    Audio paths under the manifest's folder are written relative to it, so the
    corpus folder can be moved; others stay absolute. Label columns follow the
    required ones in order of first appearance; a clip lacking a label gets "".
    Refuses to replace an existing file unless `overwrite`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass overwrite=True (or --force) to replace it")
    utterances = list(utterances)
    label_names: list[str] = []
    for u in utterances:
        for name in u.labels:
            if name in REQUIRED_COLUMNS:
                raise ManifestError(f"{path}: label {name!r} clashes with a required column")
            if name not in label_names:
                label_names.append(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.resolve().parent
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([*REQUIRED_COLUMNS, *label_names])
            for u in utterances:
                if not u.speaker:
                    raise ManifestError(f"{path}: utterance {u.path} has an empty speaker")
                audio = Path(u.path).resolve()
                shown = audio.relative_to(root) if audio.is_relative_to(root) else audio
                writer.writerow(
                    [shown.as_posix(), u.speaker, u.text, u.split, *(u.labels.get(n, "") for n in label_names)]
                )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ---------------------------------------------------------------- splits


def assign_splits(
    utterances: Sequence[Utterance],
    valid_fraction: float = 0.05,
    heldout_speakers: int | Sequence[str] = 0,
    seed: int = 0,
) -> list[Utterance]:
    """Return copies of `utterances` with `split` set deterministically.

    Speakers in `heldout_speakers` (a list of ids, or a number of speakers
    drawn with `seed`) get "test_voice" on every clip. Of every other speaker,
    round(valid_fraction * n) clips (at least one when the fraction is positive
    and the speaker has two or more clips) become "valid", the rest "train".
    The draw for a speaker depends only on the seed, the speaker id and its set
    of paths, so adding a speaker does not reshuffle the others.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    speakers = sorted(by_speaker)
    if isinstance(heldout_speakers, int):
        if not 0 <= heldout_speakers < len(speakers):
            raise ValueError(
                f"cannot hold out {heldout_speakers} of {len(speakers)} speakers; at least one must stay for training"
            )
        heldout = set(random.Random(f"{seed}:heldout").sample(speakers, heldout_speakers))
    else:
        heldout = set(heldout_speakers)
        unknown = sorted(heldout - set(speakers))
        if unknown:
            raise ValueError(f"held-out speaker(s) not in the corpus: {', '.join(unknown)}")
    split_of: dict[Path, str] = {}
    for speaker in speakers:
        clips = sorted(by_speaker[speaker], key=lambda u: str(u.path))
        if speaker in heldout:
            split_of.update((u.path, "test_voice") for u in clips)
            continue
        n_valid = round(valid_fraction * len(clips))
        if valid_fraction > 0 and len(clips) >= 2:
            n_valid = min(max(n_valid, 1), len(clips) - 1)
        # String seeds hash with SHA-512 in `random`, so this is stable across runs.
        random.Random(f"{seed}:{speaker}").shuffle(clips)
        split_of.update((u.path, "valid" if i < n_valid else "train") for i, u in enumerate(clips))
    return [dataclasses.replace(u, split=split_of[u.path], labels=dict(u.labels)) for u in utterances]


# ---------------------------------------------------------------- scanners


def _read_text(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8", errors="replace").split())


def _require_dir(root: Path, layout: str) -> None:
    if not root.is_dir():
        raise ManifestError(f"{layout}: corpus folder not found: {root}")


def _gender(value: str) -> str:
    """'F', 'female', 'M' ... -> 'f' / 'm'; anything else is kept lowercased."""
    v = value.strip().lower()
    return v[:1] if v in ("f", "m", "female", "male") else v


def scan_vctk(root: str | os.PathLike, mic: str = "mic1") -> list[Utterance]:
    """VCTK 0.92: wav48_silence_trimmed/p225/p225_001_mic1.flac + txt/p225/p225_001.txt.

    Only clips of `mic` ("mic1" or "mic2") are taken, as the two microphones
    record the same utterance. speaker-info.txt, when present, gives the
    labels gender, age, accent and region. Clips without a transcript (all of
    p315) get text "".
    """
    root = Path(root)
    _require_dir(root, "vctk")
    if mic not in ("mic1", "mic2"):
        raise ValueError(f"vctk: mic must be 'mic1' or 'mic2', got {mic!r}")
    audio_dir = root / "wav48_silence_trimmed"
    if not audio_dir.is_dir():
        raise ManifestError(f"vctk: {audio_dir} not found; is {root} a VCTK 0.92 folder?")
    info: dict[str, dict[str, str]] = {}
    info_file = root / "speaker-info.txt"
    if info_file.is_file():
        lines = info_file.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines[1:]:  # the first line is the header
            parts = line.split()
            if len(parts) < 4:
                continue
            # Older releases write the id without its "p".
            spk = "p" + parts[0] if parts[0].isdigit() else parts[0]
            info[spk] = {"gender": _gender(parts[2]), "age": parts[1], "accent": parts[3],
                         "region": " ".join(parts[4:])}
    pattern = re.compile(rf"^(?P<spk>[^_]+)_(?P<num>[^_]+)_{mic}$")
    out = []
    for audio in sorted(audio_dir.glob(f"*/*_{mic}.flac")):
        m = pattern.match(audio.stem)
        if m is None:
            continue
        spk = m["spk"]
        txt = root / "txt" / spk / f"{spk}_{m['num']}.txt"
        text = _read_text(txt) if txt.is_file() else ""
        out.append(Utterance(audio.resolve(), spk, text, "train", dict(info.get(spk, {}))))
    return out


def _read_libri_speakers(root: Path, names: Sequence[str]) -> dict[str, str]:
    """Speaker id -> gender from a LibriSpeech/LibriTTS SPEAKERS file beside or above `root`.

    Lines are `ID | SEX | SUBSET | ...`; lines starting with ';' are comments.
    """
    for folder in (root, root.parent):
        for name in names:
            f = folder / name
            if f.is_file():
                genders = {}
                for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                    parts = [p.strip() for p in line.split("|")]
                    if line.startswith(";") or len(parts) < 2:
                        continue
                    genders[parts[0]] = _gender(parts[1])
                return genders
    return {}


def scan_libritts(root: str | os.PathLike) -> list[Utterance]:
    """LibriTTS: <subset>/<spk>/<chapter>/<spk>_<chapter>_<a>_<b>.wav + .normalized.txt.

    `root` is the LibriTTS folder or one subset in it. The transcript is the
    .normalized.txt (else .original.txt, else ""). Labels: gender from
    SPEAKERS.txt when present, subset from the folder name.
    """
    root = Path(root)
    _require_dir(root, "libritts")
    genders = _read_libri_speakers(root, ("SPEAKERS.txt", "SPEAKERS.TXT"))
    pattern = re.compile(r"^(?P<spk>\d+)_(?P<chapter>\d+)_\S+$")
    out = []
    for audio in sorted(root.rglob("*.wav")):
        m = pattern.match(audio.stem)
        if m is None or audio.parent.name != m["chapter"] or audio.parent.parent.name != m["spk"]:
            continue
        text = ""
        for suffix in (".normalized.txt", ".original.txt"):
            txt = audio.with_name(audio.stem + suffix)
            if txt.is_file():
                text = _read_text(txt)
                break
        labels = {"subset": audio.parents[2].name}
        if m["spk"] in genders:
            labels["gender"] = genders[m["spk"]]
        out.append(Utterance(audio.resolve(), m["spk"], text, "train", labels))
    return out


def scan_librispeech(root: str | os.PathLike) -> list[Utterance]:
    """LibriSpeech: <subset>/<spk>/<chapter>/<spk>-<chapter>-<nnnn>.flac + <spk>-<chapter>.trans.txt.

    Every transcript line `<utt-id> TEXT` must have its .flac beside it (a
    missing one means a broken download and is an error). Labels: gender from
    SPEAKERS.TXT when present, subset from the folder name.
    """
    root = Path(root)
    _require_dir(root, "librispeech")
    genders = _read_libri_speakers(root, ("SPEAKERS.TXT", "SPEAKERS.txt"))
    out = []
    for trans in sorted(root.rglob("*.trans.txt")):
        for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            utt_id, _, text = line.partition(" ")
            audio = trans.parent / f"{utt_id}.flac"
            if not audio.is_file():
                raise ManifestError(f"{trans}, line {n}: audio file not found: {audio}")
            spk = utt_id.split("-")[0]
            labels = {"subset": trans.parents[2].name}
            if spk in genders:
                labels["gender"] = genders[spk]
            out.append(Utterance(audio.resolve(), spk, text.strip(), "train", labels))
    return out


def scan_folder(root: str | os.PathLike) -> list[Utterance]:
    """Generic layout: <root>/<speaker>/<any depth>/<clip>.(wav|flac|ogg).

    The first folder below `root` names the speaker; files directly in `root`
    belong to no speaker and are skipped. A sibling <clip>.txt or <clip>.lab
    gives the transcript, else text is "".
    """
    root = Path(root)
    _require_dir(root, "folder")
    out = []
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        rel = audio.relative_to(root)
        if len(rel.parts) < 2:
            continue
        text = ""
        for suffix in (".txt", ".lab"):
            txt = audio.with_suffix(suffix)
            if txt.is_file():
                text = _read_text(txt)
                break
        out.append(Utterance(audio.resolve(), rel.parts[0], text, "train", {}))
    return out


def scan(layout: str, root: str | os.PathLike, mic: str = "mic1") -> list[Utterance]:
    """Dispatch to the scanner for `layout`; raise ManifestError when nothing is found."""
    scanners = {
        "vctk": lambda: scan_vctk(root, mic),
        "libritts": lambda: scan_libritts(root),
        "librispeech": lambda: scan_librispeech(root),
        "folder": lambda: scan_folder(root),
    }
    if layout not in scanners:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(scanners)}")
    utterances = scanners[layout]()
    if not utterances:
        raise ManifestError(f"{layout}: no clips found under {root}")
    return utterances


def add_arguments_scan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="corpus folder")
    parser.add_argument("--layout", required=True, choices=("vctk", "libritts", "librispeech", "folder"))
    parser.add_argument("-o", "--output", type=Path, required=True, help="manifest CSV to write")
    parser.add_argument("--valid-fraction", type=float, default=0.05,
                        help="fraction of each training speaker's clips held out as 'valid'")
    parser.add_argument("--heldout-speakers", type=int, default=0,
                        help="number of speakers held out entirely as 'test_voice'")
    parser.add_argument("--mic", choices=("mic1", "mic2"), default="mic1", help="VCTK microphone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-f", "--force", action="store_true", help="overwrite an existing manifest")


def run_scan(args: argparse.Namespace) -> int:
    if args.output.exists() and not args.force:
        raise FileExistsError(f"{args.output}: exists; pass --force to replace it")
    utterances = scan(args.layout, args.root, args.mic)
    utterances = assign_splits(utterances, args.valid_fraction, args.heldout_speakers, args.seed)
    write_manifest(args.output, utterances, overwrite=args.force)
    counts = {s: sum(u.split == s for u in utterances) for s in SPLITS}
    n_speakers = len({u.speaker for u in utterances})
    print(f"{args.output}: {len(utterances)} clips, {n_speakers} speakers, "
          + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    return 0


# ---------------------------------------------------------------- synthetic corpus


@dataclass(frozen=True)
class Voice:
    """A text-to-speech voice that acts as one speaker of the synthetic corpus.

    name: speaker id in the manifest.
    engine: "flite", "festival" or "espeak-ng".
    voice: the engine's own voice name (flite -voice, festival (voice_NAME), espeak-ng -v).
    gender: "m" or "f".
    talker: the person recorded for the voice, or "formant" for espeak-ng;
        two voices built from one recording (flite slt and festival slt HTS)
        share it, so a held-out voice can be checked for a training twin.
    pitch, speed: espeak-ng -p (0..99) and -s (words per minute); unused otherwise.
    """

    name: str
    engine: str
    voice: str
    gender: str
    talker: str
    pitch: int = 50
    speed: int = 160


VOICES: tuple[Voice, ...] = (
    Voice("flite_awb", "flite", "awb", "m", "awb"),
    Voice("flite_rms", "flite", "rms", "m", "rms"),
    Voice("flite_slt", "flite", "slt", "f", "slt"),
    Voice("flite_kal", "flite", "kal16", "m", "kal"),
    Voice("festival_kal", "festival", "kal_diphone", "m", "kal"),
    Voice("festival_ked", "festival", "ked_diphone", "m", "ked"),
    Voice("festival_slt_hts", "festival", "cmu_us_slt_arctic_hts", "f", "slt"),
    # espeak-ng variants: accent, variant, pitch and speed all differ, so each
    # sounds like its own speaker rather than one voice at several speeds.
    # British English is "en", not "en-gb": espeak-ng silently drops the
    # +variant after the "en-gb" alias.
    Voice("espeak_us_m1", "espeak-ng", "en-us+m1", "m", "formant", 45, 165),
    Voice("espeak_us_m3", "espeak-ng", "en-us+m3", "m", "formant", 30, 150),
    Voice("espeak_gb_m2", "espeak-ng", "en+m2", "m", "formant", 55, 175),
    Voice("espeak_sc_m4", "espeak-ng", "en-gb-scotland+m4", "m", "formant", 40, 155),
    Voice("espeak_rp_m7", "espeak-ng", "en-gb-x-rp+m7", "m", "formant", 35, 140),
    Voice("espeak_us_klatt", "espeak-ng", "en-us+klatt", "m", "formant", 50, 160),
    Voice("espeak_gb_klatt3", "espeak-ng", "en+klatt3", "m", "formant", 25, 170),
    Voice("espeak_us_f2", "espeak-ng", "en-us+f2", "f", "formant", 60, 165),
    Voice("espeak_us_f4", "espeak-ng", "en-us+f4", "f", "formant", 70, 150),
    Voice("espeak_gb_f3", "espeak-ng", "en+f3", "f", "formant", 65, 175),
    Voice("espeak_rp_f5", "espeak-ng", "en-gb-x-rp+f5", "f", "formant", 55, 145),
    Voice("espeak_lanc_f1", "espeak-ng", "en-gb-x-gbclan+f1", "f", "formant", 75, 160),
)

# Held out entirely: one voice per engine, each with a talker no training voice shares.
TEST_VOICES: tuple[str, ...] = ("flite_awb", "festival_ked", "espeak_gb_f3")

# More recorded talkers: the other languages' festival voices that Debian
# ships, reading the English sentences by their own language's rules. Not in
# the default corpus (the shipped VAE was trained without them);
# `make-corpus --voices extra` builds a corpus of them for the vocoder
# recipe, which adds its clips to training: the default corpus has three
# recorded talkers, and the fast vocoder generalises to a new talker only as
# far as the talkers it trained on reach (recipes/vocoder/README.md).
EXTRA_VOICES: tuple[Voice, ...] = (
    Voice("festival_it_lp", "festival", "lp_diphone", "f", "it_lp"),
    Voice("festival_it_pc", "festival", "pc_diphone", "m", "it_pc"),
    Voice("festival_cs_dita", "festival", "czech_dita", "f", "cs_dita"),
    Voice("festival_cs_machac", "festival", "czech_machac", "m", "cs_machac"),
    Voice("festival_cs_ph", "festival", "czech_ph", "m", "cs_ph"),
    Voice("festival_fi_lj", "festival", "suo_fi_lj_diphone", "f", "fi_lj"),
    Voice("festival_fi_mv", "festival", "hy_fi_mv_diphone", "m", "fi_mv"),
    Voice("festival_ca_ona", "festival", "upc_ca_ona_hts", "f", "ca_ona"),
    Voice("festival_ru_nsh", "festival", "msu_ru_nsh_clunits", "m", "ru_nsh"),
)
# Every voice a name may pick (make-corpus --voices / --test-voices).
KNOWN_VOICES: tuple[Voice, ...] = VOICES + EXTRA_VOICES

# program -> Debian package that provides it
PROGRAMS = {"flite": "flite", "festival": "festival", "espeak-ng": "espeak-ng"}
ENGINE_PROGRAM = {"flite": "flite", "festival": "text2wave", "espeak-ng": "espeak-ng"}
FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"),)
FESTIVAL_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
    "lp_diphone": "festvox-italp16k",
    "pc_diphone": "festvox-itapc16k",
    "czech_dita": "festvox-czech-dita",
    "czech_machac": "festvox-czech-machac",
    "czech_ph": "festvox-czech-ph",
    "suo_fi_lj_diphone": "festvox-suopuhe-lj",
    "hy_fi_mv_diphone": "festvox-suopuhe-mv",
    "upc_ca_ona_hts": "festvox-ca-ona-hts",
    "msu_ru_nsh_clunits": "festvox-ru",
}

SAMPLE_RATE = 22050
# Silence trimming threshold below the clip's peak; 40 dB keeps soft word
# endings. Every clip then gets exactly 50 ms of silence on both sides: the
# engines lead with different amounts of silence, which would otherwise be a
# cue to the engine.
TRIM_TOP_DB = 40.0
TRIM_MARGIN_S = 0.05
# Every clip is scaled to this RMS: the engines' output levels differ by
# 10 dB or more, and a loudness difference tied to the engine would become
# part of each "speaker" the model learns.
TARGET_RMS = 0.05
MIN_DURATION_S = 0.3

DEFAULT_SENTENCES = Path(__file__).resolve().parents[1] / "recipes" / "synthetic" / "sentences.txt"


def read_sentences(path: str | os.PathLike) -> list[str]:
    """One sentence per non-empty line, whitespace collapsed; duplicates are an error."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"sentence file not found: {path}; pass --sentence-file")
    sentences = [" ".join(line.split()) for line in path.read_text(encoding="utf-8").splitlines()]
    sentences = [s for s in sentences if s]
    seen: set[str] = set()
    for s in sentences:
        if s in seen:
            raise ManifestError(f"{path}: duplicate sentence {s!r}")
        seen.add(s)
    return sentences


def check_programs(voices: Iterable[Voice]) -> None:
    """Raise SynthesisError naming the missing program or festival voice and its Debian package."""
    for v in voices:
        program = ENGINE_PROGRAM[v.engine]
        if shutil.which(program) is None:
            raise SynthesisError(
                f"voice {v.name} needs the program '{program}', which is not on PATH; "
                f"install it with: apt-get install {PROGRAMS[v.engine]}"
            )
        # any() of each glob: a generator object itself is always true.
        if v.engine == "festival" and not any(any(d.glob(f"*/{v.voice}")) for d in FESTIVAL_VOICE_DIRS):
            package = FESTIVAL_PACKAGES.get(v.voice, "the festvox package that provides it")
            raise SynthesisError(
                f"voice {v.name} needs the festival voice '{v.voice}', not found under "
                f"{', '.join(map(str, FESTIVAL_VOICE_DIRS))}; install it with: apt-get install {package}"
            )


def synthesize(voice: Voice, text: str, workdir: Path) -> tuple[np.ndarray, int]:
    """Run the engine for one sentence. Returns (samples (T,) or (T, C) float32, rate)."""
    wav = workdir / "out.wav"
    stdin = None
    if voice.engine == "flite":
        cmd = ["flite", "-voice", voice.voice, "-t", text, "-o", str(wav)]
    elif voice.engine == "festival":
        txt = workdir / "in.txt"
        txt.write_text(text + "\n", encoding="utf-8")
        cmd = ["text2wave", "-eval", f"(voice_{voice.voice})", str(txt), "-o", str(wav)]
    elif voice.engine == "espeak-ng":
        # Text on stdin, so a sentence can never be read as an option.
        cmd = ["espeak-ng", "-v", voice.voice, "-p", str(voice.pitch), "-s", str(voice.speed),
               "-w", str(wav), "--stdin"]
        stdin = text
    else:
        raise SynthesisError(f"voice {voice.name}: unknown engine {voice.engine!r}")
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not wav.is_file():
        raise SynthesisError(f"{' '.join(cmd[:3])} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    samples, rate = sf.read(str(wav), dtype="float32", always_2d=False)
    return samples, rate


def condition(samples: np.ndarray, rate: int, name: str) -> np.ndarray:
    """Engine output -> (T,) float32 at SAMPLE_RATE, RMS-normalised, with 50 ms of silence each side."""
    import librosa  # slow to import; only the synthesis workers need it

    x = to_model_audio(samples, rate, SAMPLE_RATE, name).numpy()
    _, (start, end) = librosa.effects.trim(x, top_db=TRIM_TOP_DB)
    x = x[start:end]
    if len(x) < MIN_DURATION_S * SAMPLE_RATE:
        raise AudioError(f"{name}: only {len(x) / SAMPLE_RATE:.2f} s of sound after trimming")
    rms = float(np.sqrt(np.mean(x**2)))
    gain = TARGET_RMS / max(rms, 1e-8)
    # Never clip: peaky voices stay a little quieter than the target instead.
    gain = min(gain, 0.99 / max(float(np.abs(x).max()), 1e-8))
    margin = int(TRIM_MARGIN_S * SAMPLE_RATE)
    return np.pad(x * gain, margin).astype(np.float32)


@dataclass(frozen=True)
class _Job:
    voice: Voice
    text: str
    out: Path
    overwrite: bool


def _init_worker() -> None:
    import torch

    # Resampling in torch would otherwise start one thread per core in each
    # worker, and `jobs` workers would fight over the same cores.
    torch.set_num_threads(1)


def _run_job(job: _Job) -> float | str:
    """Synthesise one clip. Returns its duration in seconds, or an error message."""
    try:
        with tempfile.TemporaryDirectory(prefix="voicevae-tts-") as tmp:
            samples, rate = synthesize(job.voice, job.text, Path(tmp))
        x = condition(samples, rate, f"{job.voice.name}: {job.text!r}")
        save_audio(job.out, x, SAMPLE_RATE, overwrite=job.overwrite)
        return len(x) / SAMPLE_RATE
    except (SynthesisError, AudioError, OSError, subprocess.TimeoutExpired, RuntimeError) as e:
        return f"{job.voice.name}: {job.text!r}: {e}"


def plan_corpus(
    voices: Sequence[Voice],
    sentences: Sequence[str],
    n_sentences: int,
    n_valid_sentences: int,
    test_voices: Iterable[str],
    seed: int,
) -> list[tuple[Voice, int, str]]:
    """Which voice reads which sentence, in which split: a list of (voice, sentence index, split).

    A fixed, seeded set of `n_valid_sentences` sentences is never read for
    training. Every voice reads all of them plus `n_sentences` others drawn
    for it with the seed; for a training voice the former are "valid" and the
    latter "train", and a voice in `test_voices` has every clip "test_voice".
    """
    if n_valid_sentences + n_sentences > len(sentences):
        raise ValueError(
            f"asked for {n_sentences} training + {n_valid_sentences} held-out sentences, "
            f"but only {len(sentences)} are available"
        )
    test_voices = set(test_voices)
    order = list(range(len(sentences)))
    random.Random(f"{seed}:valid-sentences").shuffle(order)
    held, pool = sorted(order[:n_valid_sentences]), sorted(order[n_valid_sentences:])
    plan = []
    for v in voices:
        chosen = sorted(random.Random(f"{seed}:{v.name}").sample(pool, n_sentences))
        test = v.name in test_voices
        plan += [(v, i, "test_voice" if test else "valid") for i in held]
        plan += [(v, i, "test_voice" if test else "train") for i in chosen]
    return plan


def make_corpus(
    out_dir: str | os.PathLike,
    *,
    voices: Sequence[Voice] = VOICES,
    n_sentences: int = 80,
    n_valid_sentences: int = 10,
    test_voices: Iterable[str] = TEST_VOICES,
    sentence_file: str | os.PathLike = DEFAULT_SENTENCES,
    jobs: int = 2,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> tuple[list[Utterance], list[str]]:
    """Synthesise the corpus into out_dir/wavs/<speaker>/ and write out_dir/manifest.csv.

    Clips are 16-bit WAV, mono, 22050 Hz. Manifest labels: gender, engine,
    talker. Clips that fail are skipped and returned as messages; if every
    clip fails, SynthesisError. Returns (utterances written, failures).
    """
    out_dir = Path(out_dir)
    manifest = out_dir / "manifest.csv"
    if (manifest.exists() or (out_dir / "wavs").exists()) and not force:
        raise FileExistsError(f"{out_dir}: already holds a corpus; pass --force to overwrite it")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    check_programs(voices)
    sentences = read_sentences(sentence_file)
    plan = plan_corpus(voices, sentences, n_sentences, n_valid_sentences, test_voices, seed)
    work = [
        _Job(v, sentences[i], out_dir / "wavs" / v.name / f"{v.name}_{i:03d}.wav", force)
        for v, i, _ in plan
    ]
    from tqdm import tqdm

    with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker) as pool:
        # Chunks amortise the inter-process round trip; festival clips take
        # ~0.5 s, so 8 per chunk still balances well between two workers.
        results = list(tqdm(pool.map(_run_job, work, chunksize=8), total=len(work),
                            desc="make-corpus", unit="clip", disable=not progress, file=sys.stderr))
    utterances, failures = [], []
    for (v, _, split), job, result in zip(plan, work, results):
        if isinstance(result, str):
            failures.append(result)
            continue
        labels = {"gender": v.gender, "engine": v.engine, "talker": v.talker}
        utterances.append(Utterance(job.out.resolve(), v.name, job.text, split, labels))
    if not utterances:
        raise SynthesisError(f"every clip failed; first error: {failures[0] if failures else 'none'}")
    write_manifest(manifest, utterances, overwrite=force)
    return utterances, failures


def add_arguments_make_corpus(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, help="folder for wavs/ and manifest.csv")
    parser.add_argument("--sentences", type=int, default=80, help="training sentences read by each voice")
    parser.add_argument("--valid-sentences", type=int, default=10,
                        help="sentences held out from training, read by every voice")
    parser.add_argument("--voices", default="all",
                        help="'all' (the default corpus), 'extra' (more recorded talkers, for the vocoder) or a comma "
                             f"list of: {', '.join(v.name for v in KNOWN_VOICES)}")
    parser.add_argument("--test-voices", default=",".join(TEST_VOICES),
                        help="comma list of voices held out entirely (split test_voice); '' for none")
    parser.add_argument("--sentence-file", type=Path, default=DEFAULT_SENTENCES)
    parser.add_argument("--jobs", type=int, default=2, help="synthesis processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-f", "--force", action="store_true", help="overwrite an existing corpus")


def select_voices(spec: str) -> list[Voice]:
    """'all', 'extra' or a comma list of voice names -> Voice objects, in the order given."""
    if spec == "all":
        return list(VOICES)
    if spec == "extra":
        return list(EXTRA_VOICES)
    by_name = {v.name: v for v in KNOWN_VOICES}
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise ValueError(f"unknown voice(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def run_make_corpus(args: argparse.Namespace) -> int:
    voices = select_voices(args.voices)
    test_voices = [n.strip() for n in args.test_voices.split(",") if n.strip()]
    unknown = sorted(set(test_voices) - {v.name for v in KNOWN_VOICES})
    if unknown:
        raise ValueError(f"unknown test voice(s): {', '.join(unknown)}")
    start = time.perf_counter()
    utterances, failures = make_corpus(
        args.out_dir, voices=voices, n_sentences=args.sentences, n_valid_sentences=args.valid_sentences,
        test_voices=test_voices, sentence_file=args.sentence_file, jobs=args.jobs, seed=args.seed,
        force=args.force,
    )
    for message in failures:
        print(f"skipped: {message}", file=sys.stderr)
    hours = sum(sf.info(str(u.path)).duration for u in utterances) / 3600
    counts = {s: sum(u.split == s for u in utterances) for s in SPLITS}
    print(
        f"{args.out_dir / 'manifest.csv'}: {len(utterances)} clips ({len(failures)} failed), "
        f"{len({u.speaker for u in utterances})} voices, {hours:.2f} h, "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; {time.perf_counter() - start:.0f} s",
        file=sys.stderr,
    )
    return 0
