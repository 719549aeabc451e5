"""End-to-end conversion speed: 10 s of speech, and a 10-minute file in bounded memory.

    python benchmarks/convert_rtf.py [--model DIR] [--vocoders fast,griffinlim,hifigan] [--threads 2] [--long-minutes 10]

For each vocoder: wall time of load (file read + resample), mel, encode,
latent arithmetic, decode and vocode for a 10 s clip (best of 3), reported as
"x faster than real time". Then one long file is converted with the fastest
vocoder by `convert_files` (block by block, as `voicevae convert` does) and
the peak resident memory of the process is printed, with the RSS before
conversion for comparison (benchmarks/long_file_memory.py measures memory
per length in fresh processes).
"""

from __future__ import annotations

import argparse
import functools
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import voicevae
from voicevae.api import DEFAULT_MODEL


def speechlike(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A harmonic signal with a moving pitch and syllable-rate envelope, (T,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wav = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * env * wav / np.abs(wav).max() + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL.parent))
    ap.add_argument("--clip", help="a real 10 s speech file to use instead of a synthetic one")
    ap.add_argument("--vocoders", default="fast,griffinlim,hifigan")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long-minutes", type=float, default=10.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(args.clip) if args.clip else Path(tmp) / "ten_seconds.wav"
        if not args.clip:
            sf.write(clip, speechlike(10.0, 22050), 22050)
        seconds = sf.info(str(clip)).duration
        print(f"threads: {args.threads}, clip: {seconds:.1f} s")
        print("| vocoder | wall (s) | x real time |")
        print("| --- | --- | --- |")
        fastest = None
        for name in args.vocoders.split(","):
            vc = voicevae.load(args.model, vocoder=name, device="cpu")
            target = vc.speakers[0]
            vc.convert(clip, target=target)  # warm-up
            best = min(_timed(functools.partial(vc.convert, clip, target=target)) for _ in range(3))
            print(f"| {name} | {best:.3f} | {seconds / best:.1f} |")
            if fastest is None or best < fastest[1]:
                fastest = (name, best)

        long = Path(tmp) / "long.wav"
        sf.write(long, speechlike(60 * args.long_minutes, 22050, seed=1), 22050)
        vc = voicevae.load(args.model, vocoder=fastest[0], device="cpu")
        before = current_rss_mb()
        # convert_files, as `voicevae convert` runs it: a long file streams through in blocks.
        wall = _timed(lambda: vc.convert_files([long], Path(tmp) / "out", target=vc.speakers[0], progress=False))
        print(
            f"\n{args.long_minutes:g}-minute file with {fastest[0]}: {wall:.1f} s ({60 * args.long_minutes / wall:.1f}x real time), "
            f"RSS before {before:.0f} MB, peak RSS {peak_rss_mb():.0f} MB"
        )


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
