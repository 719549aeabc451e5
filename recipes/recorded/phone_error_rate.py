"""How well the phonetic term's head reads phones from z_c, on training voices and on held-out ones.

    python recipes/recorded/phone_error_rate.py runs/rec_cc_ph/ckpt-0008000.pt [--clips 60]

A diagnostic for the phonetic term (voicevae/training/phonetic.py): the
greedy CTC decoding of the head on the content posterior mean of whole
clean clips, scored as a phone error rate (edit distance over phones /
reference phones) against espeak-ng's phones of the transcript, per split
of the checkpoint's manifest. If held-out voices read about as well as
training voices, the content latent keeps their phones and what loses the
words is downstream of it.
"""

from __future__ import annotations

import argparse

import torch

from voicevae.checkpoint import load_checkpoint
from voicevae.config import TrainConfig, from_dict
from voicevae.data import load_corpus
from voicevae.metrics import word_errors
from voicevae.model import VAE
from voicevae.training.phonetic import Phonetic


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a ckpt-*.pt of a run trained with lambdas.phone/ctc")
    p.add_argument("--clips", type=int, default=60, help="clips per split (the first ones with phones)")
    args = p.parse_args()
    saved = load_checkpoint(args.checkpoint, "vae-train")
    if "phonetic" not in saved:
        raise SystemExit(f"{args.checkpoint}: not trained with the phonetic term (no head in it)")
    cfg = from_dict(TrainConfig, saved["train_config"], args.checkpoint)
    model = VAE(cfg.model, cfg.mel)
    model.load_state_dict(saved["model"])
    model.eval()
    inventory = saved["phonetic"]["inventory"]
    for split in (cfg.data.train_split, "test_voice"):
        corpus = load_corpus(cfg.data.manifest, split, cfg.mel, cfg.data, progress=False)
        term = Phonetic(
            cfg.phonetic,
            corpus,
            cfg.data.manifest,
            split,
            model,
            cfg.data.cache_dir,
            inventory=inventory,
            progress=False,
            drop_unknown=True,
        )
        term.head.load_state_dict(saved["phonetic"]["head"])
        by_group: dict[str, list[int]] = {}
        step = max(1, len(term.clips) // args.clips)  # spread over the split's voices
        with torch.no_grad():
            for i in term.clips[::step][: args.clips]:
                q = model.content_encoder(model.prepare(corpus.mels[i].float().unsqueeze(0))[0])
                best = term.head(q.mu).argmax(1)[0].tolist()
                hyp = [b for j, b in enumerate(best) if b != 0 and (j == 0 or b != best[j - 1])]
                ref = term.targets[i].tolist()
                errors, n = word_errors(" ".join(map(str, ref)), " ".join(map(str, hyp)))
                group = f"{split} {corpus.speakers[i].split('_')[0]}"
                counts = by_group.setdefault(group, [0, 0, 0])
                counts[0], counts[1], counts[2] = counts[0] + errors, counts[1] + n, counts[2] + 1
        for group, (errors, n, clips) in sorted(by_group.items()):
            print(f"{group:24s} clips {clips:3d}  phone error rate {errors / max(1, n):.3f}")


if __name__ == "__main__":
    main()
