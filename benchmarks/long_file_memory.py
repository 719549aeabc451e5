"""Peak memory and speed of converting long files with the defaults (streaming.py), each length in a fresh process.

    python benchmarks/long_file_memory.py [--minutes 10,60] [--threads 2] [--model DIR] [--vocoder fast]

For each length a speech-like WAV is written block by block (this process
never holds it), then a child process loads the converter, notes its RSS,
converts the file with `convert_files` (as `voicevae convert` does) and
reports its peak RSS. The goal: peak at most 250 MB above the RSS after
loading, and the same for 10 minutes as for an hour.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def write_speechlike(path: Path, seconds: float, rate: int = 22050, block_seconds: float = 30.0) -> None:
    """A harmonic signal with a moving pitch and a syllable-rate envelope, written a block at a time."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        phase, done, total = 0.0, 0, int(seconds * rate)
        while done < total:
            n = min(int(block_seconds * rate), total - done)
            t = (done + np.arange(n)) / rate
            f0 = 120 + 30 * np.sin(2 * np.pi * 0.3 * t)
            ph = phase + 2 * np.pi * np.cumsum(f0) / rate
            phase = float(ph[-1])
            wav = sum(np.sin(k * ph) / k for k in range(1, 20)) / 3
            env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
            f.write((0.2 * env * wav + 0.003 * rng.standard_normal(n)).astype(np.float32))
            done += n


def child(args: argparse.Namespace) -> None:
    import torch

    import voicevae

    torch.set_num_threads(args.threads)
    vc = voicevae.load(args.model, vocoder=args.vocoder, device="cpu")
    with open("/proc/self/statm") as f:
        loaded = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        report = vc.convert_files([args.child], out, target=vc.speakers[0], progress=False)
    wall = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"conversion failed: {report.failed}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"loaded_mb": loaded, "peak_mb": peak, "wall_s": wall}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="10,60")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None)
    ap.add_argument("--vocoder", default="fast")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    print(f"threads {args.threads}, vocoder {args.vocoder}")
    print("| length | RSS after load (MB) | peak RSS (MB) | peak - loaded (MB) | wall (s) | x real time |")
    print("| --- | --- | --- | --- | --- | --- |")
    for minutes in (float(m) for m in args.minutes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "long.wav"
            write_speechlike(src, 60 * minutes)
            cmd = [sys.executable, __file__, "--child", str(src), "--threads", str(args.threads), "--vocoder", args.vocoder]
            if args.model:
                cmd += ["--model", args.model]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(
            f"| {minutes:g} min | {r['loaded_mb']:.0f} | {r['peak_mb']:.0f} | {r['peak_mb'] - r['loaded_mb']:.0f} | "
            f"{r['wall_s']:.1f} | {60 * minutes / r['wall_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
