"""Speech corpora as manifests.

A manifest is the one description of a corpus that the rest of the toolkit
reads: a CSV file with the header `path,speaker,text,split` and any further
columns as labels (`gender`, `engine`, `accent`, ...). `path` is relative to
the manifest's folder, or absolute. `split` is `train`, `valid` (held-out
sentences of training speakers) or `test_voice` (speakers never trained on).

This module reads and writes manifests, and writes them from four on-disk
layouts (`scan_vctk`, `scan_libritts`, `scan_librispeech`, `scan_folder`,
then `assign_splits`). Command: `voicevae scan`. The synthetic corpus, which
needs nothing downloaded, is made by `voicevae.synthetic` (`voicevae
make-corpus`) and described by a manifest like any other.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import random
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .audio import AUDIO_SUFFIXES
from .checkpoint import atomic_write

REQUIRED_COLUMNS = ("path", "speaker", "text", "split")
SPLITS = ("train", "valid", "test_voice")


class ManifestError(ValueError):
    """A manifest or corpus layout is malformed; the message names file and row."""


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
    root = path.resolve().parent
    with atomic_write(path, ".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*REQUIRED_COLUMNS, *label_names])
        for u in utterances:
            if not u.speaker:
                raise ManifestError(f"{path}: utterance {u.path} has an empty speaker")
            audio = Path(u.path).resolve()
            shown = audio.relative_to(root) if audio.is_relative_to(root) else audio
            writer.writerow([shown.as_posix(), u.speaker, u.text, u.split, *(u.labels.get(n, "") for n in label_names)])
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
            info[spk] = {"gender": _gender(parts[2]), "age": parts[1], "accent": parts[3], "region": " ".join(parts[4:])}
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
    """Generic layout: <root>/<speaker>/<any depth>/<clip>.<suffix>, any suffix in AUDIO_SUFFIXES.

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


def _write_and_report(output: Path, utterances: list[Utterance], force: bool) -> int:
    """Write a command's manifest and say on stderr what it holds (clips, speakers, clips per split)."""
    write_manifest(output, utterances, overwrite=force)
    counts = {s: sum(u.split == s for u in utterances) for s in SPLITS}
    n_speakers = len({u.speaker for u in utterances})
    print(
        f"{output}: {len(utterances)} clips, {n_speakers} speakers, " + ", ".join(f"{k} {v}" for k, v in counts.items()),
        file=sys.stderr,
    )
    return 0


def add_arguments_scan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="corpus folder")
    parser.add_argument("--layout", required=True, choices=("vctk", "libritts", "librispeech", "folder"))
    parser.add_argument("-o", "--output", type=Path, required=True, help="manifest CSV to write")
    parser.add_argument(
        "--valid-fraction", type=float, default=0.05, help="fraction of each training speaker's clips held out as 'valid'"
    )
    parser.add_argument("--heldout-speakers", type=int, default=0, help="number of speakers held out entirely as 'test_voice'")
    parser.add_argument("--mic", choices=("mic1", "mic2"), default="mic1", help="VCTK microphone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-f", "--force", action="store_true", help="overwrite an existing manifest")


def run_scan(args: argparse.Namespace) -> int:
    if args.output.exists() and not args.force:
        raise FileExistsError(f"{args.output}: exists; pass --force to replace it")
    utterances = scan(args.layout, args.root, args.mic)
    utterances = assign_splits(utterances, args.valid_fraction, args.heldout_speakers, args.seed)
    return _write_and_report(args.output, utterances, args.force)


# ---------------------------------------------------------------- merging


def merge_manifests(paths: Sequence[str | os.PathLike]) -> list[Utterance]:
    """The clips of several manifests as one corpus, each labelled `corpus` = its manifest's folder name.

    Speakers must be unique across the inputs: two corpora that both call a
    speaker "p225" are different people, and merging them silently would
    average two voices into one vector. A clash is an error naming both files.
    """
    if len(paths) < 2:
        raise ValueError("merge needs at least two manifests")
    owner: dict[str, Path] = {}
    merged: list[Utterance] = []
    for path in map(Path, paths):
        utts = read_manifest(path)
        corpus = path.resolve().parent.name
        for s in sorted({u.speaker for u in utts}):
            if s in owner:
                raise ManifestError(f"speaker {s!r} is in both {owner[s]} and {path}; rename it in one of them")
            owner[s] = path
        merged += [dataclasses.replace(u, labels={**u.labels, "corpus": corpus}) for u in utts]
    return merged


def add_arguments_merge_manifests(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="+", type=Path, help="manifest CSVs to merge (two or more)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="manifest CSV to write")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite an existing manifest")


def run_merge_manifests(args: argparse.Namespace) -> int:
    if args.output.exists() and not args.force:
        raise FileExistsError(f"{args.output}: exists; pass --force to replace it")
    utterances = merge_manifests(args.manifests)
    return _write_and_report(args.output, utterances, args.force)
