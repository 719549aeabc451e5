"""Why does resynthesis lose its voicing: blur, or the wrong spectrum?

    .venv/bin/python benchmarks/voicing_check.py --model runs/R [--vocoder fast] [--per-voice 4]

`benchmarks/intonation_check.py` shows a model's resynthesis voiced in far
fewer frames than the vocoder alone on the same clips. This takes the same
held-out clips and vocodes log-mels built between the original's and the
model's, printing the judge's voiced share (pYIN, `metrics.track_spread`) and
a harmonic-contrast figure for each:

- original: the vocoder alone (the ceiling);
- model: the model's reconstruction (the decoder's mean);
- the original blurred along the mel axis or along time by Gaussians of a few
  widths: what a decoder that over-smooths would give, to set beside `model`;
- the original's low band (below `--split-hz`) with the model's above it, and
  the model's low band with the original's above: which band's errors unvoice;
- the model's reconstruction with the original's frame-to-frame detail in the
  low band (the original minus its mel-axis blur, added back): whether the
  decoder has the envelope right and only lacks the harmonic ripple.

For a model with a harmonic source (`model.harmonic_source`) it first
prints how far, in semitones, the register its head reads from each clip's
speaker latent lies from the clip's own (the comb of a resynthesis or a
conversion is placed at the head's register).

Harmonic contrast is the mean absolute second difference along the mel axis
of the low band in voiced frames of the original, in nats: the ripple that
resolved harmonics leave on a log-mel. A blurred spectrum has less of it.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from voicevae import load
from voicevae.evaluate_unseen import heldout_clips
from voicevae.features import bins_below
from voicevae.metrics import f0_track, track_spread


def contrast(mels: list[torch.Tensor], voiced: list[np.ndarray], low: int) -> float:
    """Mean |second difference along mel| over bins below `low`, frames the original voices."""
    values = []
    for m, v in zip(mels, voiced):
        d2 = (m[2:low] - 2 * m[1 : low - 1] + m[: low - 2]).abs()  # (low-2, F)
        frames = torch.from_numpy(v)  # already one flag per mel frame
        if frames.any():
            values.append(float(d2[:, frames].mean()))
    return float(np.mean(values))


def blur(m: torch.Tensor, sigma: float, axis: int) -> torch.Tensor:
    return torch.from_numpy(gaussian_filter1d(m.numpy(), sigma, axis=axis, mode="nearest")).to(m.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a model folder (model.pt + vectors.pt)")
    ap.add_argument("--manifest", default="data/combined/manifest.csv")
    ap.add_argument("--vocoder", default="fast")
    ap.add_argument("--per-voice", type=int, default=4)
    ap.add_argument("--split-hz", type=float, default=1000.0, help="low/high band split for the swaps")
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    vc = load(args.model, vocoder=args.vocoder)
    clips = heldout_clips(vc, args.manifest, per_voice=args.per_voice)
    rate = vc.sample_rate
    originals = [vc.mel(c.audio) for c in clips]
    models = [vc.convert_mel(c.audio, None) for c in clips]
    models = [m[:, : o.shape[-1]] for m, o in zip(models, originals)]
    originals = [o[:, : m.shape[-1]] for m, o in zip(models, originals)]
    low = bins_below(vc.model.mel_config, args.split_hz)
    # Voiced frames of each original at the mel hop (pYIN's 10 ms hop resampled to the mel frames).
    source_tracks = [f0_track(c.audio, rate) for c in clips]
    voiced = []
    for (_, v), m in zip(source_tracks, originals):
        idx = np.minimum((np.arange(m.shape[-1]) * len(v) / m.shape[-1]).astype(int), len(v) - 1)
        voiced.append(v[idx])

    def swap(a: list[torch.Tensor], b: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.cat([x[:low], y[low:]]) for x, y in zip(a, b)]

    detail = [o - blur(o, 2.0, 0) for o in originals]
    variants = {
        "original (vocoder alone)": originals,
        "model reconstruction": models,
        **{f"original, mel-axis blur sigma {s}": [blur(o, s, 0) for o in originals] for s in (1.0, 2.0, 4.0)},
        **{f"original, time blur sigma {s} frames": [blur(o, s, 1) for o in originals] for s in (1.0, 2.0, 4.0)},
        f"original below {args.split_hz:.0f} Hz, model above": swap(originals, models),
        f"model below {args.split_hz:.0f} Hz, original above": swap(models, originals),
        "model + original's mel-axis ripple (below split)": [
            torch.cat([m[:low] + d[:low], m[low:]]) for m, d in zip(models, detail)
        ],
    }
    print(f"{len(clips)} held-out clips, vocoder {args.vocoder}, low band below bin {low} ({args.split_hz:.0f} Hz)\n")
    if vc.model.decoder.comb is not None:
        # A conversion places the comb at the register the speaker latent gives: how far is it from the clip's own?
        errors = []
        for c, m in zip(clips, originals):
            own = vc.intonation(c.audio, m.shape[-1])
            if own is not None and own[0, 1].any():
                guess = vc.model.decoder.register(vc.encode_speaker(c.audio).unsqueeze(0))
                errors.append(12 * abs(float(guess[0]) - float(own[0, 2, 0])))
        print(f"register head: median |error| {np.median(errors):.2f} semitones over {len(errors)} voiced clips\n")
    print("| log-mel vocoded | voiced share | harmonic contrast (nats) | mel L1 to original |")
    print("| --- | --- | --- | --- |")
    for name, mels in variants.items():
        wavs = vc.vocode_many(mels)
        share = np.nanmean([track_spread(f0_track(w, rate))[1] for w in wavs])
        l1 = np.mean([float((m - o).abs().mean()) for m, o in zip(mels, originals)])
        print(f"| {name} | {share:.3f} | {contrast(mels, voiced, low):.3f} | {l1:.3f} |")


if __name__ == "__main__":
    main()
