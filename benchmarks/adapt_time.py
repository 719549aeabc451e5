"""Wall time of `voicevae adapt` on about a minute of one voice's recordings, with the default settings.

    python benchmarks/adapt_time.py [--manifest data/synthetic/manifest.csv] [--voice flite_awb] [--seconds 60] [--threads 2]

Takes the held-out voice's first clips that make --seconds of audio (the
`voicevae evaluate --cloning` budget), adapts the shipped model to them with
AdaptConfig's defaults (or --steps), and prints how long preparing the
recordings takes alone and how long the whole adapt() call takes (which
prepares them again, then measures pitch and fine-tunes). Goal: adapt() on
1 minute of audio under 5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import time

import torch

import voicevae
from voicevae.corpora import read_manifest
from voicevae.evaluate_cloning import budget_clips
from voicevae.recordings import prepare_recordings, total_seconds
from voicevae.training.adapt import AdaptConfig, adapt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", default="data/synthetic/manifest.csv")
    ap.add_argument("--voice", default="flite_awb")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=AdaptConfig.steps)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    vc = voicevae.load(vocoder="griffinlim", device="cpu")
    clips = [u.path for u in budget_clips([u for u in read_manifest(args.manifest) if u.speaker == args.voice], args.seconds)]
    t0 = time.perf_counter()
    utterances = prepare_recordings(clips, vc.sample_rate)
    t1 = time.perf_counter()
    result = adapt(vc.model, vc.vectors, clips, f"{args.voice}_bench", AdaptConfig(steps=args.steps), progress=False)
    t2 = time.perf_counter()
    print("| audio | clips | steps | threads | preparing | adapt() in all | per step |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {total_seconds(utterances, vc.sample_rate):.1f} s | {len(clips)} | {len(result.log)} | {args.threads} | "
        f"{t1 - t0:.1f} s | {t2 - t1:.1f} s | {(t2 - t1) / max(len(result.log), 1):.3f} s |"
    )


if __name__ == "__main__":
    main()
