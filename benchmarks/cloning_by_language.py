"""A cloning protocol run split by language: same-language pairs against cross-language ones, WER by source language.

    python benchmarks/cloning_by_language.py runs/clone_default_cn1_f0s1_60.json --manifest data/combined/manifest.csv

Reads a report of `voicevae evaluate --cloning` (its JSON: the per-conversion
scores and the [target, source file] of each conversion) and the manifest
the run used, whose `language` label names each clip's language (an empty
label counts as English, as the synthetic corpus's voices are). Resemblyzer's
embedding carries the language spoken as well as the voice, and pocketsphinx
reads English only; so for each condition it prints

- similarity to the target and the share closer to it, over conversions
  whose source speaks the target's language and over the rest;
- the WER per source language, next to the untouched sources' own
  (transcribed here once, as the protocol does);
- with `--pairs CONDITION`: that condition's mean similarity to the target
  for each target (rows) and source voice (columns).

Every figure is a subset of the run's own scores; nothing is converted again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import voicevae
from voicevae.corpora import ManifestError, read_manifest
from voicevae.metrics import Transcriber, word_errors

DEFAULT_LANGUAGE = "en"  # what an empty language label means in the shipped corpora


def split_by_language(
    report: dict, pairs: list[tuple[str, str]], conditions: list[str] | None = None
) -> dict[str, dict[str, dict]]:
    """Per budget and condition: "same" and "other" -> (similarity to target, share closer) or None when no
    conversion falls there, and "wer" -> {source language: pooled WER}. pairs: (target's, source's language)
    of each conversion, in the report's order."""
    same = np.array([a == b for a, b in pairs])
    source_language = np.array([b for _, b in pairs])
    out: dict[str, dict[str, dict]] = {}
    for budget, per in report["scores"].items():
        out[budget] = {}
        for cond, s in per.items():
            if conditions and cond not in conditions:
                continue
            to_t, to_s = np.array(s["to_target"]), np.array(s["to_source"])
            errors, words = np.array(s["errors"]), np.array(s["words"])
            row: dict = {
                k: (float(to_t[m].mean()), float(np.mean(to_t[m] > to_s[m]))) if m.any() else None
                for k, m in (("same", same), ("other", ~same))
            }
            row["wer"] = {
                lang: float(errors[source_language == lang].sum() / max(words[source_language == lang].sum(), 1))
                for lang in sorted(set(source_language))
            }
            out[budget][cond] = row
    return out


def pair_means(scores: list[float], pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """(target, source voice) -> the mean of the scores of its conversions."""
    by_pair: dict[tuple[str, str], list[float]] = {}
    for pair, score in zip(pairs, scores, strict=True):
        by_pair.setdefault(pair, []).append(score)
    return {pair: float(np.mean(v)) for pair, v in by_pair.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="a cloning protocol report (.json)")
    ap.add_argument("--manifest", required=True, help="the manifest the run used")
    ap.add_argument("--conditions", default="", help="conditions to show, comma-separated (default: all)")
    ap.add_argument(
        "--pairs", default="", metavar="CONDITION", help="also this condition's similarity per target and source voice"
    )
    args = ap.parse_args()
    try:
        report = json.loads(Path(args.report).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{args.report}: cannot read a report from it ({e})") from None
    if "conversions" not in report or "scores" not in report:
        raise SystemExit(f"{args.report}: not a cloning protocol report (no conversions or scores)")
    try:
        heldout = read_manifest(args.manifest, split="test_voice")
    except ManifestError as e:
        raise SystemExit(str(e)) from None
    clips = {u.path.name: u for u in heldout}
    if len(clips) < len(heldout):
        # The report names each source by its file name alone.
        raise SystemExit(f"{args.manifest}: two held-out clips share a file name; this report cannot tell them apart")
    voice_language: dict[str, str] = {}
    for u in clips.values():
        voice_language[u.speaker] = u.labels.get("language") or DEFAULT_LANGUAGE
    missing = sorted({name for _, name in report["conversions"] if name not in clips})
    if missing:
        raise SystemExit(f"{args.manifest}: has no held-out clip {missing[0]} of {args.report} (another manifest?)")
    pairs = [(voice_language[t], voice_language[clips[name].speaker]) for t, name in report["conversions"]]
    source_language = [b for _, b in pairs]

    # The untouched sources' own word errors, per language (each source clip counted once per conversion, as pooled).
    vc = voicevae.load(None, vocoder="fast")
    asr = Transcriber()
    own = {
        name: word_errors(clips[name].text, asr.transcribe(vc.load_audio(clips[name].path), vc.sample_rate))
        for name in {n for _, n in report["conversions"]}
    }
    languages = sorted(set(source_language))
    print(f"{args.report}: {len(pairs)} conversions, {sum(a == b for a, b in pairs)} within one language")
    for lang in languages:
        names = [n for (_, n), s in zip(report["conversions"], source_language) if s == lang]
        errors, words = sum(own[n][0] for n in names), sum(own[n][1] for n in names)
        print(f"  sources in {lang}: {len(names)} conversions, their own WER {errors / max(words, 1):.3f}")

    wanted = [c for c in args.conditions.split(",") if c]
    for budget, rows in split_by_language(report, pairs, wanted).items():
        print(f"\n{float(budget):g} s")
        print(
            "| condition | same language: similarity / closer | other: similarity / closer |"
            + "".join(f" WER, {lang} sources |" for lang in languages)
        )
        print("| --- " * (3 + len(languages)) + "|")
        for cond, row in rows.items():
            cells = [f"{row[k][0]:.3f} / {row[k][1]:.2f}" if row[k] else "-" for k in ("same", "other")]
            cells += [f"{row['wer'][lang]:.3f}" for lang in languages]
            print(f"| {cond} | " + " | ".join(cells) + " |")
        if args.pairs:
            if args.pairs not in report["scores"][budget]:
                raise SystemExit(f"--pairs: {args.report} has no condition {args.pairs!r}")
            scores = report["scores"][budget][args.pairs]["to_target"]
            voices = sorted(voice_language)
            means = pair_means(scores, [(t, clips[name].speaker) for t, name in report["conversions"]])
            print(f"\n{args.pairs}: similarity to the target, targets (rows) by source voices (columns)")
            print("| target | " + " | ".join(voices) + " |")
            print("| --- " * (len(voices) + 1) + "|")
            for t in voices:
                print(f"| {t} | " + " | ".join(f"{means[t, v]:.3f}" if (t, v) in means else "-" for v in voices) + " |")


if __name__ == "__main__":
    main()
