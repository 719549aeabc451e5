"""Few-shot cloning of unheard voices under postfilter, strength and content-norm settings, paired conversion by conversion.

    python benchmarks/fewshot_postfilter.py --manifest data/combined/manifest.csv --betas 0,0.2,0.4 --strengths 1,1.25 --sources 18
    python benchmarks/fewshot_postfilter.py --manifest data/combined/manifest.csv --betas 0,0.4 --content-norms 0,1 --sources 18

The few-shot section of `voicevae evaluate --unseen` (evaluate_unseen.py),
with more sources per target (the protocol takes 6) so that differences of
a few points of WER can be told from noise, and every setting scored on the
same conversions: held-out voices and packaged recordings, 3 reference clips
per voice, each target's judge reference the mean Resemblyzer embedding of
its other clips, sources drawn in turn from the other voices. Each setting
converts with `vc.postfilter = B` (postfilter.py) and the speaker latent
z_source + S * (z_target - z_source) (S = 1 is plain conversion; S > 1 goes
past the target, away from the source), and with `content_norm=C`
(content_stats.py; the target's statistics from its 3 reference clips).
Prints the pooled figures per setting, then each setting against the first
(B, S and C first in their lists) per conversion, with 95% intervals.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from tqdm import tqdm

import voicevae
from voicevae.evaluate_cloning import difference_cell
from voicevae.evaluate_unseen import Split, heldout_clips
from voicevae.metrics import SpeakerEncoder, Transcriber, paired_difference, word_errors

REFERENCES = 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--betas", default="0,0.2,0.4", help="postfilter values")
    ap.add_argument("--strengths", default="1", help="conversion strengths")
    ap.add_argument("--content-norms", default="0", help="content_norm values")
    ap.add_argument("--sources", type=int, default=18, help="source clips per target")
    args = ap.parse_args()
    settings = [
        (float(b), float(s), float(c))
        for c in args.content_norms.split(",")
        for s in args.strengths.split(",")
        for b in args.betas.split(",")
    ]
    vc = voicevae.load(args.model, vocoder="fast")
    clips = heldout_clips(vc, args.manifest)
    enc, asr = SpeakerEncoder(), Transcriber()
    rate = vc.sample_rate
    split = Split.of(clips, REFERENCES)  # the protocol's references and sources
    emb = enc.embed_many([c.audio for c in clips], rate)

    per: dict[tuple[float, float, float], dict[str, list[float]]] = {k: {"to_t": [], "closer": [], "wer": []} for k in settings}
    errors = {k: [0, 0] for k in settings}
    source_errors = [0, 0]
    with torch.inference_mode():
        for t in tqdm(sorted(split.refs), desc="targets"):
            references = [clips[i].audio for i in split.refs[t]]
            target = vc.speaker_vector(references)
            # The references' frames: content norm's target statistics (built only when a setting uses them).
            matching = vc.matching_set(references) if any(norm for _, _, norm in settings) else None
            target_emb = split.voice_embedding(emb, t, set(split.refs[t]))
            assert target_emb is not None
            for i in split.sources(clips, t, args.sources):
                c = clips[i]
                source_emb = split.voice_embedding(emb, c.speaker, {i})
                own = vc.encode_speaker(c.audio)
                if c.text:
                    e, n = word_errors(c.text, asr.transcribe(c.audio, rate))
                    source_errors[0] += e
                    source_errors[1] += n
                for beta, strength, norm in settings:
                    vc.postfilter = beta
                    out = vc.convert(c.audio, target=own + strength * (target - own), content_norm=norm, matching=matching)
                    e_out = enc.embed(out, rate)
                    to_t = float(e_out @ target_emb)
                    to_s = float(e_out @ source_emb) if source_emb is not None else math.nan
                    row = per[beta, strength, norm]
                    row["to_t"].append(to_t)
                    row["closer"].append(math.nan if math.isnan(to_s) else float(to_t > to_s))
                    if c.text:
                        e, n = word_errors(c.text, asr.transcribe(out, rate))
                        errors[beta, strength, norm][0] += e
                        errors[beta, strength, norm][1] += n
                        row["wer"].append(e / max(n, 1))
                    else:
                        row["wer"].append(math.nan)
    n = len(per[settings[0]]["to_t"])
    print(f"{n} conversions; sources' WER {source_errors[0] / max(source_errors[1], 1):.3f}")
    print("| postfilter | strength | content norm | closer to target | similarity to target | WER |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k in settings:
        row, (e, w) = per[k], errors[k]
        print(
            f"| {k[0]:g} | {k[1]:g} | {k[2]:g} | {np.nanmean(row['closer']):.3f} | {np.mean(row['to_t']):.3f} | {e / max(w, 1):.3f} |"
        )
    base = per[settings[0]]
    first = f"postfilter {settings[0][0]:g}, strength {settings[0][1]:g}, content norm {settings[0][2]:g}"
    print(f"\nAgainst {first}, per conversion (mean [95% interval], above 0):")
    print("| postfilter | strength | content norm | similarity to target | closer to target | WER per clip |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k in settings[1:]:
        cells = [difference_cell(paired_difference(per[k][m], base[m])) for m in ("to_t", "closer", "wer")]
        print(f"| {k[0]:g} | {k[1]:g} | {k[2]:g} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
