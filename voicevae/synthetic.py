"""The offline synthetic corpus: Debian text-to-speech voices as speakers.

`make_corpus` has espeak-ng, flite and festival read a sentence list, one
voice per speaker, and conditions every clip the same way (22050 Hz mono,
trimmed, RMS-normalised) so that no engine gives itself away by level or
leading silence. It writes the clips and a manifest (`voicevae.corpora`), so
the toolkit can be trained with nothing downloaded. Command: `voicevae
make-corpus`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile as sf

from .audio import AudioError, save_audio, to_model_audio
from .corpora import SPLITS, ManifestError, Utterance, write_manifest


class SynthesisError(ValueError):
    """A text-to-speech program is missing or failed."""


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
        cmd = ["espeak-ng", "-v", voice.voice, "-p", str(voice.pitch), "-s", str(voice.speed), "-w", str(wav), "--stdin"]
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


J = TypeVar("J")
R = TypeVar("R")


def _init_worker() -> None:
    import torch

    # Resampling in torch would otherwise start one thread per core in each
    # worker, and `jobs` workers would fight over the same cores.
    torch.set_num_threads(1)


def map_clips(fn: Callable[[J], R], work: list[J], jobs: int, desc: str, chunksize: int, progress: bool) -> list[R]:
    """fn over work in `jobs` worker processes (one torch thread each), in order, with a progress bar per clip.

    Shared by make-corpus and make-recorded. `chunksize` jobs go to a worker
    at a time, to amortise the inter-process round trip.
    """
    from tqdm import tqdm

    with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker) as pool:
        return list(
            tqdm(
                pool.map(fn, work, chunksize=chunksize),
                total=len(work),
                desc=desc,
                unit="clip",
                disable=not progress,
                file=sys.stderr,
            )
        )


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
            f"asked for {n_sentences} training + {n_valid_sentences} held-out sentences, but only {len(sentences)} are available"
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
    work = [_Job(v, sentences[i], out_dir / "wavs" / v.name / f"{v.name}_{i:03d}.wav", force) for v, i, _ in plan]
    # Festival clips take ~0.5 s, so 8 per chunk still balances well between two workers.
    results = map_clips(_run_job, work, jobs, "make-corpus", chunksize=8, progress=progress)
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
    parser.add_argument("--valid-sentences", type=int, default=10, help="sentences held out from training, read by every voice")
    parser.add_argument(
        "--voices",
        default="all",
        help="'all' (the default corpus), 'extra' (more recorded talkers, for the vocoder) or a comma "
        f"list of: {', '.join(v.name for v in KNOWN_VOICES)}",
    )
    parser.add_argument(
        "--test-voices",
        default=",".join(TEST_VOICES),
        help="comma list of voices held out entirely (split test_voice); '' for none",
    )
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
        args.out_dir,
        voices=voices,
        n_sentences=args.sentences,
        n_valid_sentences=args.valid_sentences,
        test_voices=test_voices,
        sentence_file=args.sentence_file,
        jobs=args.jobs,
        seed=args.seed,
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
