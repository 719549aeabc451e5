"""Where is the melody lost: in the vocoder, or in the VAE?

    .venv/bin/python benchmarks/intonation_check.py --model runs/R [--model runs/S ...] [--vocoder fast]

Takes the held-out clips of `voicevae evaluate --unseen` (every scored clip
of the test_voice split and the packaged real recordings) and prints, as the
judge's pYIN reads them (`metrics.f0_spread`, `metrics.f0_correlation`), the
F0 spread in semitones, the voiced share of frames and the F0 correlation
with the original of: the originals; the vocoder alone on each original's
log-mel (copy synthesis: what any model could reach at best); and each
model's resynthesis (encode, decode, vocode). A model that renders speech
monotone or whispered shows a spread or voiced share well under the copy
synthesis; a vocoder that does shows it in its own row.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from voicevae import load
from voicevae.evaluate_unseen import heldout_clips
from voicevae.metrics import F0Track, f0_track, track_correlation, track_spread


def row(name: str, originals: list[F0Track], tracks: list[F0Track]) -> str:
    spread = [track_spread(t) for t in tracks]
    corr = [track_correlation(o, t) for o, t in zip(originals, tracks)]
    return (
        f"| {name} | {np.nanmean([s for s, _ in spread]):.2f} | {np.nanmean([v for _, v in spread]):.3f} "
        f"| {np.nanmean(corr):.3f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="a model folder (model.pt + vectors.pt); repeat to compare")
    ap.add_argument("--manifest", default="data/combined/manifest.csv")
    ap.add_argument("--vocoder", default="fast")
    ap.add_argument("--per-voice", type=int, default=8)
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    first = load(args.model[0], vocoder=args.vocoder)
    clips = heldout_clips(first, args.manifest, per_voice=args.per_voice)
    rate = first.sample_rate
    originals = [c.audio for c in clips]
    print(f"{len(clips)} held-out clips, vocoder {args.vocoder}, judged by pYIN 60-500 Hz\n")
    print("| audio | F0 spread (semitones) | voiced share | F0 correlation with original |")
    print("| --- | --- | --- | --- |")
    # pYIN is the slow step: each original is tracked once, and its own row correlates the track with itself.
    tracks = [f0_track(w, rate) for w in originals]
    print(row("originals", tracks, tracks))
    copies = first.vocode_many([first.mel(w) for w in originals])
    print(row(f"vocoder alone ({args.vocoder})", tracks, [f0_track(w, rate) for w in copies]))
    for path in args.model:
        vc = first if path == args.model[0] else load(path, vocoder=args.vocoder)
        print(row(f"resynthesis, {path}", tracks, [f0_track(vc.resynthesize(w), rate) for w in originals]))


if __name__ == "__main__":
    main()
