"""Vocoder speed on this CPU: real-time factor on 10 s of speech, and memory on 10 minutes.

    .venv/bin/python benchmarks/vocoder_rtf.py [--vocoders hifigan,griffinlim,fast] [--threads 2] \
        [--minutes 10] [--long-vocoders fast,griffinlim]

RTF = compute seconds per second of audio (lower is faster; 0.02 is 50x real
time), best of `--repeats` runs on 10 s of real speech (the real clips looped).
The long-input test vocodes a 10-minute log-mel in chunks in a fresh process
per vocoder, so each peak RSS (ru_maxrss) belongs to that vocoder alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from voicevae.features import MelFrontend
from voicevae.vocoder import load_vocoder

RATE = 22050


def ten_seconds_of_speech(seconds: float = 10.0) -> torch.Tensor:
    """(T,) real speech from voicevae.realclips, looped to `seconds`."""
    from voicevae.realclips import load_real_clip, real_clips

    parts, total = [], 0
    clips = real_clips()
    if not clips:
        raise SystemExit("no real speech clips installed (voicevae.realclips found none)")
    while total < seconds * RATE:
        for clip in clips:
            parts.append(load_real_clip(clip, RATE))
            total += parts[-1].shape[0]
    return torch.cat(parts)[: int(seconds * RATE)]


def rtf(name: str, logmel: torch.Tensor, seconds: float, repeats: int) -> float:
    vocoder = load_vocoder(name)
    vocoder.vocode(logmel[..., :64])  # warm-up: first-call allocations and kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        vocoder.vocode(logmel)
        best = min(best, time.perf_counter() - start)
    return best / seconds


def long_input(name: str, minutes: float) -> dict[str, float]:
    """Vocode `minutes` of log-mel in chunks; report time and peak RSS of this process."""
    vocoder = load_vocoder(name)
    frames = int(minutes * 60 * RATE / vocoder.hop_length)
    # A looped speech-like log-mel; its values do not change the cost.
    base = MelFrontend()(ten_seconds_of_speech().unsqueeze(0))
    logmel = base.repeat(1, 1, frames // base.shape[-1] + 1)[..., :frames]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    audio = vocoder.vocode(logmel)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "seconds": elapsed,
        "rtf": elapsed / (minutes * 60),
        "peak_rss_mib": peak / 1024,
        "rss_before_mib": before / 1024,
        "output_mib": audio.numel() * 4 / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocoders", default="hifigan,griffinlim,fast")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long input (0 skips it)")
    parser.add_argument("--long-vocoders", help="comma-separated subset that gets the long input (default: all)")
    parser.add_argument("--long-one", metavar="NAME", help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.long_one:
        print(json.dumps(long_input(args.long_one, args.minutes)))
        return 0

    names = [n.strip() for n in args.vocoders.split(",") if n.strip()]
    long_names = names if args.long_vocoders is None else [n.strip() for n in args.long_vocoders.split(",")]
    speech = ten_seconds_of_speech()
    logmel = MelFrontend()(speech.unsqueeze(0))
    rows = []
    for name in names:
        row = {"vocoder": name, "rtf": rtf(name, logmel, speech.shape[0] / RATE, args.repeats)}
        if args.minutes > 0 and name in long_names:
            child = subprocess.run(
                [sys.executable, __file__, "--long-one", name, "--minutes", str(args.minutes), "--threads", str(args.threads)],
                capture_output=True,
                text=True,
                check=True,
            )
            row.update({f"long_{k}": v for k, v in json.loads(child.stdout.strip().splitlines()[-1]).items()})
        rows.append(row)
        print(f"done: {name}", file=sys.stderr)

    print(f"\ntorch threads = {args.threads}; RTF = compute s / audio s (best of {args.repeats}, 10 s of speech)\n")
    header = "| vocoder | RTF (10 s) | x real time |"
    rule = "| --- | --- | --- |"
    if args.minutes > 0:
        header += f" {args.minutes:g} min: time s | RTF | peak RSS MiB | of which output MiB |"
        rule += " --- | --- | --- | --- |"
    print(header)
    print(rule)
    for r in rows:
        line = f"| {r['vocoder']} | {r['rtf']:.4f} | {1 / r['rtf']:.1f} |"
        if args.minutes > 0 and "long_seconds" in r:
            line += (
                f" {r['long_seconds']:.1f} | {r['long_rtf']:.4f} | {r['long_peak_rss_mib']:.0f} | {r['long_output_mib']:.0f} |"
            )
        elif args.minutes > 0:
            line += " not run | | | |"
        print(line)
    # The goals compare the trained vocoder with each of the others, in this one run.
    print()
    for fast in rows:
        for other in rows:
            if fast is not other and fast["rtf"] < other["rtf"]:
                print(f"{fast['vocoder']} is {other['rtf'] / fast['rtf']:.1f}x faster than {other['vocoder']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
