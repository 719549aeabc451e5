"""Which pitch a zero-shot conversion and its match_pitch shift really have, read three ways.

    python benchmarks/f0_octave_check.py                     # festival_ked as the target, flite_awb's clips as sources

For each source clip it prints the median F0 of the zero-shot conversion and
of the same conversion with match_pitch, as read by the product's tracker
(voicevae.pitch, pYIN down to 50 Hz), by the judge's (voicevae.metrics, pYIN
60-500 Hz) and by the real cepstrum of the loudest 40% of frames (no pYIN at
all). Where the first reads half of what the other two agree on, it took a
subharmonic for the pitch. Needs data/synthetic (make corpus).
"""

from __future__ import annotations

import argparse

import librosa
import numpy as np
import torch

from voicevae import load
from voicevae.corpora import read_manifest
from voicevae.evaluate_cloning import JUDGE_CLIPS, budget_clips
from voicevae.metrics import median_f0 as judge_median_f0
from voicevae.pitch import median_f0 as product_median_f0

CEPSTRUM_RATE = 16000


def cepstral_f0(wav: torch.Tensor, rate: int) -> float:
    """Median F0 in Hz from the real-cepstrum peak (60-500 Hz quefrencies) of the loudest 40% of frames."""
    x = librosa.resample(wav.numpy(), orig_sr=rate, target_sr=CEPSTRUM_RATE)
    spec = np.abs(librosa.stft(x, n_fft=2048, hop_length=160))
    loud = spec.sum(0) > np.percentile(spec.sum(0), 60)
    cep = np.fft.irfft(np.log(spec[:, loud] + 1e-6), axis=0)
    lags = np.arange(CEPSTRUM_RATE // 500, CEPSTRUM_RATE // 60)
    return float(np.median(CEPSTRUM_RATE / lags[cep[lags].argmax(0)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="data/synthetic/manifest.csv")
    p.add_argument("--target", default="festival_ked")
    p.add_argument("--source-voice", default="flite_awb")
    p.add_argument("--sources", type=int, default=3)
    p.add_argument("--seconds", type=float, default=60.0, help="the target's clips the zero-shot vector averages")
    args = p.parse_args()
    torch.set_num_threads(1)
    vc = load(vocoder="fast")
    rows = read_manifest(args.manifest, split="test_voice")
    target = [u for u in rows if u.speaker == args.target]
    sources = [u for u in rows if u.speaker == args.source_voice][-JUDGE_CLIPS - args.sources : -JUDGE_CLIPS]
    clips = [u.path for u in budget_clips(target[: -JUDGE_CLIPS - args.sources], args.seconds)]
    vector, goal = vc.speaker_vector(clips), vc.target_f0(clips)["median_hz"]
    rate = vc.sample_rate
    print(f"target {args.target}: median F0 of its clips {goal:.1f} Hz (product tracker)")
    print("source clip | output | product pYIN 50-600 | judge pYIN 60-500 | cepstrum")
    for u in sources:
        src = vc.load_audio(u.path)
        for name, out in (
            ("zero-shot", vc.convert(src, vector)),
            ("+ match_pitch", vc.convert(src, vector, match_pitch=True, target_hz=goal)),
        ):
            reads = (product_median_f0(out, rate), judge_median_f0(out, rate), cepstral_f0(out, rate))
            print(f"{u.path.name} | {name} | " + " | ".join(f"{hz:.1f}" for hz in reads))


if __name__ == "__main__":
    main()
