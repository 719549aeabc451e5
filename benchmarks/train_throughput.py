"""Training throughput of the VAE on this machine: mel frames per second and data-loading share.

    python benchmarks/train_throughput.py [--config recipes/synthetic/config.yaml] [--steps 60] [--threads 2]

Runs the real training loop (`voicevae.training.vae.train`) for --steps steps into a
temporary folder and reads the figures the loop itself logs (frames_per_s,
data_fraction), skipping the first logging window as warm-up.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import torch

from voicevae.training.vae import load_config, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="recipes/synthetic/config.yaml")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    window = max(1, args.steps // 6)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            args.config,
            [f"out_dir={tmp}/run", f"steps={args.steps}", f"log_every={window}", f"valid_every={10**9}", f"ckpt_every={10**9}"],
        )
        train(cfg, progress=False)
        rows = [r for r in csv.DictReader(open(Path(tmp) / "run" / "train.csv")) if r.get("frames_per_s")]
    rows = rows[1:] or rows  # the first window includes start-up
    fps = sum(float(r["frames_per_s"]) for r in rows) / len(rows)
    data = sum(float(r["data_fraction"]) for r in rows) / len(rows)
    seconds = fps * cfg.mel.hop_length / cfg.mel.sample_rate
    print(
        f"device: {'cuda' if torch.cuda.is_available() else 'cpu'} ({args.threads} threads), model channels={cfg.model.channels} blocks={cfg.model.n_blocks}"
    )
    print(
        f"batch: {cfg.data.speakers_per_batch * cfg.data.clips_per_speaker} x {cfg.data.segment_frames} frames, steps measured: {len(rows) * window}"
    )
    print(f"throughput: {fps:,.0f} mel frames/s ({seconds:,.0f} s of audio per second)")
    print(f"data loading: {100 * data:.2f}% of step time")


if __name__ == "__main__":
    main()
