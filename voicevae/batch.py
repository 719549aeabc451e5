"""Batch conversion: many audio files through one `VoiceConverter`.

    from voicevae.batch import convert_files
    report = convert_files(vc, paths, "out/", target="slt")   # = vc.convert_files(...)

`convert_files` (the API method, `voicevae convert` / `resynth`) and the
demo's batch tab all run `convert_pairs`, so a clip gets the same audio
whichever way it was converted. A file that fails is reported in the
`BatchReport` with its reason and the rest still run; existing outputs are
refused unless `force`. `collect_inputs` turns the files and folders named on
the command line into the files to convert and the root each one's output
path mirrors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import soundfile as sf
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from .audio import AUDIO_SUFFIXES, MAX_RATE, MIN_RATE, OUTPUT_FORMATS, save_audio
from .streaming import check_blend_options, convert_file

# Files longer than this are converted block by block, in constant memory.
STREAM_SECONDS = 30.0

if TYPE_CHECKING:  # api imports this module; the converter is only a type here
    from .api import Source, VoiceConverter


@dataclass
class BatchReport:
    """What `convert_files` did: written outputs and failed inputs with their reasons."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    # What was done to an input that its owner may not expect (downmixing, resampling).
    notes: list[str] = field(default_factory=list)


def collect_inputs(items: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """(file, root it is relative to) for every audio file named or found in a named folder.

    A folder is searched recursively for AUDIO_SUFFIXES and is the root of
    every file in it, so outputs mirror its tree; a named file is its own
    folder's, so its output is flat. A folder without audio, or a name that
    does not exist, raises FileNotFoundError before anything is converted.
    """
    found: list[tuple[Path, Path]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
            if not files:
                raise FileNotFoundError(f"{p}: folder holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
            found += [(f, p) for f in files]
        elif p.is_file():
            found.append((p, p.parent))
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return found


def output_path(path: Path, out_dir: Path, root: Path | None = None, fmt: str = "wav") -> Path:
    """Where the conversion of `path` goes: its path relative to `root` (default: its name) under out_dir, with suffix `fmt`."""
    rel = path.relative_to(root) if root is not None else Path(path.name)
    return (out_dir / rel).with_suffix(f".{fmt}")


def check_unique_outputs(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Refuse two inputs that would be written to one output (src.flac and src.ogg both -> src.wav)."""
    seen: dict[Path, Path] = {}
    for src, out in pairs:
        if out in seen and seen[out] != src:
            raise ValueError(f"{seen[out]} and {src} would both be written to {out}; convert them in separate runs or rename one")
        seen[out] = src


def convert_files(
    vc: VoiceConverter,
    paths: Iterable[str | Path],
    out_dir: str | Path,
    target: str | torch.Tensor | Sequence[Source] | None = None,
    strength: float = 1.0,
    attributes: dict[str, float] | None = None,
    method: str = "arithmetic",
    root: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    batch_size: int | None = None,
    retrieval: float = 0.0,
    pitch_shift: float = 0.0,
    match_pitch: bool = False,
    fmt: str = "wav",
    sample_rate: int | None = None,
    detail: float = 0.0,
    content_norm: float = 0.0,
    f0_spread: float = 0.0,
) -> BatchReport:
    """Convert (or, with target=None, resynthesize) many files into out_dir.

    Output paths mirror the inputs' paths relative to `root` (default: flat
    names), with the suffix of `fmt` (wav, flac or ogg); two inputs that would
    share an output are refused before anything runs. See `convert_pairs`
    for the rest.
    """
    out_dir = Path(out_dir)
    root = Path(root) if root is not None else None
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format {fmt!r}: choose one of {', '.join(OUTPUT_FORMATS)}")
    pairs = [(Path(p), output_path(Path(p), out_dir, root, fmt)) for p in paths]
    check_unique_outputs(pairs)
    return convert_pairs(
        vc,
        pairs,
        target,
        strength,
        attributes,
        method,
        force=force,
        progress=progress,
        batch_size=batch_size,
        retrieval=retrieval,
        pitch_shift=pitch_shift,
        match_pitch=match_pitch,
        detail=detail,
        content_norm=content_norm,
        f0_spread=f0_spread,
        sample_rate=sample_rate,
    )


def convert_pairs(
    vc: VoiceConverter,
    pairs: Iterable[tuple[str | Path, str | Path]],
    target: str | torch.Tensor | Sequence[Source] | None = None,
    strength: float = 1.0,
    attributes: dict[str, float] | None = None,
    method: str = "arithmetic",
    force: bool = False,
    progress: bool = True,
    batch_size: int | None = None,
    retrieval: float = 0.0,
    pitch_shift: float = 0.0,
    match_pitch: bool = False,
    sample_rate: int | None = None,
    detail: float = 0.0,
    content_norm: float = 0.0,
    f0_spread: float = 0.0,
) -> BatchReport:
    """Convert each (input file, output file) pair; each output's suffix picks its format (audio.save_audio).

    Outputs are at `sample_rate` (default vc.sample_rate, the model's own).
    `report.notes` says which inputs were mixed down to mono or resampled.

    Existing outputs are refused unless force=True; a file that fails is
    reported and the rest still run. `report.written` lists outputs in the
    order they were written, which is by length when batch_size > 1.

    The VAE runs clip by clip (its content encoder normalises each clip over
    time, so padding would change it); the vocoder, which is where the time
    goes, runs `batch_size` clips at once (default 16 on a GPU, 1 on the
    CPU, where batching gains nothing). Clips are taken in order of length
    so little of a batch is padding.
    """
    jobs = [(Path(path), Path(out)) for path, out in pairs]
    # One header read per file: its length (ordering, the progress bar, streaming) and what will be done to it.
    inspected = {path: _inspect(path, vc.sample_rate) for path, _ in jobs}
    seconds = {path: s for path, (s, _) in inspected.items()}
    batch_size = batch_size or (16 if vc.device.type == "cuda" else 1)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # Refused before any file, not once per file.
    check_blend_options(target, retrieval=retrieval, detail=detail, content_norm=content_norm, f0_spread=f0_spread)
    if f0_spread:
        vc.check_melody_input()
    report = BatchReport()
    out_rate = sample_rate or vc.sample_rate
    if not MIN_RATE <= out_rate <= MAX_RATE:
        raise ValueError(f"output sample rate {out_rate} Hz: choose one in {MIN_RATE}..{MAX_RATE}")
    # Reference clips are encoded once for the whole batch; names stay names
    # so the "stats" method can use the named speaker's spread.
    target_vec = target if target is None or isinstance(target, str) else vc.target_vector(target)
    # Likewise the target's frames (retrieval, content_norm) and pitch (match_pitch, f0_spread), found once.
    matching = None
    if target is not None and retrieval:
        matching = vc.matching_for(target)
    elif target is not None and content_norm and vc.stored_content_stats(target) is None:
        matching = vc.matching_for(target, purpose="content_norm")
    target_hz = vc.target_f0(target)["median_hz"] if match_pitch and target is not None else None
    target_spread = vc.target_spread(target) if f0_spread and target is not None else None

    def fail(path: Path, out: Path, e: Exception) -> None:
        # Every reason names the file at fault.
        reason = str(e) if str(path) in str(e) or str(out) in str(e) else f"{path}: {e}"
        report.failed.append((path, reason))

    pending: list[tuple[Path, Path, torch.Tensor]] = []  # (input, output, converted mel)

    def flush() -> None:
        try:
            audios = vc.vocode_many([m for _, _, m in pending])
        except (ValueError, RuntimeError) as e:
            for path, out, _ in pending:
                fail(path, out, e)
        else:
            for (path, out, _), wav in zip(pending, audios):
                try:
                    wav = vc.adjust_pitch(wav, target_vec, pitch_shift, match_pitch, target_hz)
                    if out_rate != vc.sample_rate:
                        wav = AF.resample(wav, vc.sample_rate, out_rate)
                    report.written.append(save_audio(out, wav, out_rate, overwrite=force))
                except (ValueError, OSError) as e:
                    fail(path, out, e)
        bar.update(sum(seconds[path] for path, _, _ in pending))
        pending.clear()

    # Long files stream through block by block (streaming.py: the same samples
    # in constant memory) unless an option needs the whole clip at once.
    whole_clip_options = bool(retrieval or content_norm or f0_spread or pitch_shift or match_pitch)
    total = sum(seconds.values())
    with tqdm(total=round(total, 1), desc="converting", unit="s audio", disable=not progress) as bar:
        for path, out in sorted(jobs, key=lambda job: seconds[job[0]]) if batch_size > 1 else jobs:
            streamed = False
            try:
                if out.exists() and not force:
                    raise FileExistsError(f"{out}: exists; pass --force to overwrite")
                note = inspected[path][1]
                if note:
                    report.notes.append(note)
                if seconds[path] > STREAM_SECONDS and not whole_clip_options:
                    streamed, done = True, 0.0

                    def advance(s: float) -> None:
                        nonlocal done
                        done += s
                        bar.update(s)

                    try:
                        written = convert_file(
                            vc,
                            path,
                            out,
                            target_vec,
                            strength,
                            attributes,
                            method,
                            out_rate,
                            force,
                            on_progress=advance,
                            detail=detail,
                        )
                    finally:
                        bar.update(max(0.0, seconds[path] - done))  # the bar moves on past a failed file too
                    report.written.append(written)
                    continue
                pending.append(
                    (
                        path,
                        out,
                        vc.convert_mel(
                            path,
                            target_vec,
                            strength,
                            attributes,
                            method,
                            retrieval=retrieval,
                            matching=matching,
                            detail=detail,
                            content_norm=content_norm,
                            f0_spread=f0_spread,
                            target_spread=target_spread,
                        ),
                    )
                )
            except (ValueError, OSError, RuntimeError) as e:  # AudioError, FileExistsError, unreadable files
                fail(path, out, e)
                if not streamed:  # a streamed file's seconds are on the bar already
                    bar.update(seconds[path])
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
    return report


def _inspect(path: Path, rate: int) -> tuple[float, str | None]:
    """(seconds of audio, a note such as 'x.wav: 2 channels mixed down to mono, 44100 Hz resampled to 22050 Hz' or None).

    An unreadable file gives (0, None): it then fails in the conversion, with its reason.
    """
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - unreadable files are reported by the conversion itself
        return 0.0, None
    done = []
    if info.channels > 1:
        done.append(f"{info.channels} channels mixed down to mono")
    if info.samplerate != rate:
        done.append(f"{info.samplerate} Hz resampled to {rate} Hz")
    return info.frames / info.samplerate, (f"{path}: {', '.join(done)}" if done else None)
