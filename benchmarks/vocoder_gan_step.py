"""Seconds per vocoder training step, with and without each discriminator family.

    .venv/bin/python benchmarks/vocoder_gan_step.py [--config recipes/vocoder/config.yaml] [--threads 2]

Uses the recipe's model and discriminator sizes on a random batch of the
recipe's shape; prints the mean of 5 steps after 2 warm-up steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from voicevae.config import VocoderConfig, load_yaml
from voicevae.training.vocoder import build_state, train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="recipes/vocoder/config.yaml")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_yaml(VocoderConfig, args.config)
    audio = 0.1 * torch.randn(config.data.batch_size, config.data.segment_frames * config.mel.hop_length)
    variants = {
        "plain (no GAN)": (config.disc, 10**9),
        "GAN, both families": (config.disc, 0),
        "GAN, period discriminators only": (dataclasses.replace(config.disc, resolutions=()), 0),
        "GAN, resolution discriminators only": (dataclasses.replace(config.disc, periods=()), 0),
    }
    for name, (disc, start) in variants.items():
        state = build_state(dataclasses.replace(config, disc=disc, disc_start_step=start), torch.device("cpu"), None)
        for _ in range(2):
            train_step(state, audio)
        began = time.perf_counter()
        for _ in range(5):
            train_step(state, audio)
        print(f"{name}: {(time.perf_counter() - began) / 5:.3f} s/step")


if __name__ == "__main__":
    main()
