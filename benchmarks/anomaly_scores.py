"""Which anomaly score tells held-out speech from non-speech: log p(x) alone, or a likelihood ratio?

    .venv/bin/python benchmarks/anomaly_scores.py [--model voicevae/assets/default] [--manifest data/combined/manifest.csv]

The speech is the clips of `voicevae evaluate --unseen` (voices held out from
all training and the packaged real recordings); the non-speech is the
generated sounds of `evaluate.non_speech_clips` and the installed effects and
music of `evaluate.packaged_sounds`. Each clip's log p(x) per frame is
computed once; each row subtracts another generic model's log-likelihood of
the clip's log-mel (complexity.py says why):

- none: log p(x) alone, the score before the ratio;
- stationary: each mel bin a Gaussian with the clip's mean and variance (the
  product's, `complexity.stationary_log_likelihood`);
- ar1: each frame predicted by the one before (a random walk), the
  differences under the stationary model;
- zlib: the compressed size of the log-mel quantised to 1 nat, in nats per
  frame (Serrà et al.'s compressor, up to a constant per frame).

Prints the AUROC of speech against each kind of non-speech for every row,
each row's difference from the stationary baseline's with a bootstrap
interval (clips resampled, both baselines scored on the same resample), and
the sounds the product's ratio finds most speech-like.
"""

from __future__ import annotations

import argparse
import math
import zlib

import numpy as np
import torch
from tqdm import tqdm

from voicevae import load
from voicevae.complexity import stationary_log_likelihood
from voicevae.evaluate import non_speech_clips, packaged_sounds
from voicevae.evaluate_unseen import heldout_clips
from voicevae.metrics import auroc


def ar1_log_likelihood(mel: torch.Tensor) -> float:
    """(n_mels, F) -> log-likelihood per frame of the frame-to-frame differences under their stationary model."""
    return stationary_log_likelihood(torch.diff(mel, dim=-1))


def zlib_log_likelihood(mel: torch.Tensor, step: float = 1.0) -> float:
    """(n_mels, F) -> minus the zlib code length of the quantised log-mel, in nats per frame."""
    q = np.round(mel.cpu().numpy().T / step).astype(np.int16)
    return -len(zlib.compress(q.tobytes(), 9)) * 8 * math.log(2) / mel.shape[-1]


BASELINES = {
    "none": lambda mel: 0.0,
    "stationary": stationary_log_likelihood,
    "ar1": ar1_log_likelihood,
    "zlib": zlib_log_likelihood,
}


def _pooled(s: dict[str, list[float]]) -> tuple[list[float], list[float]]:
    """(all speech, all non-speech) scores of one baseline."""
    return s["real speech"] + s["synthetic speech"], s["generated sounds"] + s["packaged sounds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder or model.pt (default: the shipped model)")
    p.add_argument("--manifest", default="data/combined/manifest.csv")
    p.add_argument("--per-voice", type=int, default=8)
    p.add_argument("--samples", type=int, default=16, help="importance samples per clip")
    args = p.parse_args()
    torch.manual_seed(0)
    vc = load(args.model, vocoder="fast", device="cpu")
    rate = vc.sample_rate
    clips = heldout_clips(vc, args.manifest, per_voice=args.per_voice)
    groups: dict[str, dict[str, torch.Tensor]] = {
        "real speech": {c.name: c.audio for c in clips if c.kind == "real"},
        "synthetic speech": {c.name: c.audio for c in clips if c.kind != "real"},
        "generated sounds": non_speech_clips(rate),
        "packaged sounds": packaged_sounds(rate),
    }
    scores: dict[str, dict[str, list[float]]] = {name: {g: [] for g in groups} for name in BASELINES}
    for group, waves in groups.items():
        for wav in tqdm(waves.values(), desc=group, leave=False):
            mel = vc.mel(wav)
            log_px = vc.score(wav, n_samples=args.samples)
            for name, baseline in BASELINES.items():
                scores[name][group].append(log_px - baseline(mel))
    print(f"clips: {', '.join(f'{g} {len(w)}' for g, w in groups.items())}")
    print(
        "| baseline subtracted | real vs generated | real vs packaged | synthetic vs generated | all speech vs all non-speech |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, s in scores.items():
        speech, noise = _pooled(s)
        cells = [
            auroc(s["real speech"], s["generated sounds"]),
            auroc(s["real speech"], s["packaged sounds"]) if s["packaged sounds"] else math.nan,
            auroc(s["synthetic speech"], s["generated sounds"]) if s["synthetic speech"] else math.nan,
            auroc(speech, noise),
        ]
        print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    # Paired by clip: resample the speech and the sounds, score each resample under both baselines.
    rng = np.random.default_rng(0)
    base_speech, base_noise = (np.array(v) for v in _pooled(scores["stationary"]))
    print("\nAUROC all speech vs all non-speech, minus the stationary baseline's (bootstrap 95% interval, 2000 resamples):")
    for name in BASELINES:
        if name == "stationary":
            continue
        speech, noise = (np.array(v) for v in _pooled(scores[name]))
        diffs = []
        for _ in range(2000):
            i, j = rng.integers(0, speech.size, speech.size), rng.integers(0, noise.size, noise.size)
            diffs.append(auroc(speech[i], noise[j]) - auroc(base_speech[i], base_noise[j]))
        low, high = np.percentile(diffs, [2.5, 97.5])
        print(f"  {name}: {auroc(speech, noise) - auroc(base_speech, base_noise):+.3f} [{low:+.3f}, {high:+.3f}]")
    # Where the product's ratio goes wrong: the most speech-like sounds and the least speech-like speech.
    ranked = sorted(
        (score, group, name) for group, waves in groups.items() for score, name in zip(scores["stationary"][group], waves)
    )
    speech = [(v, n) for v, g, n in ranked if "speech" in g][:6]
    print("\nlowest-scoring speech (stationary ratio):", ", ".join(f"{n} {v:.0f}" for v, n in speech))
    sounds = [(v, n) for v, g, n in reversed(ranked) if "sounds" in g][:8]
    print("highest-scoring sounds (stationary ratio):", ", ".join(f"{n.rsplit('/', 1)[-1]} {v:.0f}" for v, n in sounds))


if __name__ == "__main__":
    main()
