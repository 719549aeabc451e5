"""`voicevae evaluate --cloning 30,60,180`: cloning a voice held out from all training, by how much audio.

For each held-out voice T of the manifest's `test_voice` split and each
budget of B seconds of T's recordings (T's first clips, as many as make B):

- zero-shot: the target is the mean speaker latent of those clips;
- adapted: the model fine-tuned on them (training/adapt.py), target T;
- adapted + retrieval R: the same, each frame blended with T's nearest
  frames at ratio R, for each R of `--cloning-retrieval` (default 0.25,0.5,1),
  so the word error rate can be read against the ratio; with
  `--cloning-spaces`, once per key space of the matching set ("adapted +
  retrieval R (mfcc:2)"), each paired with the default space at the same R;
- adapted + match_pitch (and zero-shot + match_pitch): the output's median
  F0 moved to T's when more than `match_pitch_tolerance` semitones off.
- with `--cloning-detail D`: zero-shot + detail D, adapted + detail D and
  adapted + retrieval R + detail D, the source's own detail added back
  (VoiceConverter.convert_mel), each paired with the same condition without it;
- with `--cloning-content-norm C`: likewise with content norm C, the
  source's content latents moved to the target's statistics (content_stats.py;
  zero-shot takes them from the budget's clips, adapted ones from the vector file);
- with `--cloning-f0-spread S`: likewise with f0_spread S, the source's
  melody range moved toward the target's (pitch.melody_spread; zero-shot
  measures it on the budget's clips, adapted ones read it from the vector file);
- with two or more of these given: every plain condition also with them
  stacked at their first values, in the order above, each stack paired with
  the one it builds on ("adapted + content norm 1 + f0 spread 1" with
  "adapted + content norm 1"; with all three, "adapted + detail D + content
  norm C" as well).

The sources are clips of the other held-out voices (never T's), so every
conversion is between two voices the model never trained on. The judges:
Resemblyzer similarity to T and to the source voice (reference embeddings
from the last 8 clips of each voice, which no adaptation uses), pocketsphinx
word errors against the text (next to the untouched sources' own), the
median F0 error against T's median F0 (pYIN in the judge's band,
metrics.median_f0, in semitones) and the log-F0
correlation with the source contour. Every claim of one condition beating
another is a paired per-conversion difference with its 95% t interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from .api import VoiceConverter
from .corpora import Utterance, read_manifest
from .matching import DEFAULT_SPACE, parse_space
from .metrics import Difference, SpeakerEncoder, Transcriber, f0_correlation, median_f0, paired_difference, word_errors
from .pitch import semitones_between
from .training.adapt import AdaptConfig


def retrieval_condition(ratio: float, space: str = DEFAULT_SPACE) -> str:
    return f"adapted + retrieval {ratio:g}" + ("" if space == DEFAULT_SPACE else f" ({space})")


# Options each added to the plain conditions as conditions of their own,
# "zero-shot + detail 1", "adapted + content norm 1", ...: option -> label.
ADD_ONS = {"detail": "detail", "content_norm": "content norm", "f0_spread": "f0 spread"}


def add_on_conditions(
    add_ons: dict[str, Sequence[float]], ratios: Sequence[float], spaces: Sequence[str] = (DEFAULT_SPACE,)
) -> dict[str, tuple[str, str, float]]:
    """Each condition with an add-on (`detail` D, `content_norm` C, `f0_spread` S) -> (the condition without it, option, value).

    add_ons: option (a key of ADD_ONS) -> its values. Retrieval takes an
    add-on in the default key space only, so without that space there is none.
    With two or more options given, their first values are also stacked, in
    ADD_ONS order: "adapted + content norm 1 + f0 spread 1" is "adapted +
    content norm 1" with f0_spread 1, and is paired with it. Every condition
    comes after the one it builds on.
    """
    out = {}
    plains = ("zero-shot", "adapted", *(retrieval_condition(r) for r in ratios if DEFAULT_SPACE in spaces))
    for option, values in add_ons.items():
        for v in values:
            for plain in plains:
                out[f"{plain} + {ADD_ONS[option]} {v:g}"] = (plain, option, v)
    given = [(option, add_ons[option][0]) for option in ADD_ONS if add_ons.get(option)]
    for depth in range(2, len(given) + 1):
        option, v = given[depth - 1]
        for plain in plains:
            below = plain + "".join(f" + {ADD_ONS[o]} {w:g}" for o, w in given[: depth - 1])
            out[f"{below} + {ADD_ONS[option]} {v:g}"] = (below, option, v)
    return out


def conditions(
    ratios: Sequence[float], spaces: Sequence[str] = (DEFAULT_SPACE,), add_ons: dict[str, Sequence[float]] | None = None
) -> tuple[str, ...]:
    return (
        "zero-shot",
        "zero-shot + match_pitch",
        "adapted",
        *(retrieval_condition(r, s) for s in spaces for r in ratios),
        "adapted + match_pitch",
        *add_on_conditions(add_ons or {}, ratios, spaces),
    )


JUDGE_CLIPS = 8  # the last clips of each voice: the judges' references, never adapted on


@dataclass
class Scores:
    """Per conversion, in order: the judges' measures of one condition at one budget."""

    to_target: list[float] = field(default_factory=list)
    to_source: list[float] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    f0_error: list[float] = field(default_factory=list)  # |semitones| from the target's median F0
    f0_corr: list[float] = field(default_factory=list)

    def wer_per_clip(self) -> list[float]:
        return [e / max(n, 1) for e, n in zip(self.errors, self.words)]

    def closer(self) -> list[float]:
        """1.0 for each conversion the judge puts nearer the target than the source, else 0.0."""
        return [float(a > b) for a, b in zip(self.to_target, self.to_source)]

    def summary(self) -> dict[str, float]:
        return {
            "closer to target (share)": float(np.mean(self.closer())),
            "similarity to target": float(np.mean(self.to_target)),
            "similarity to source": float(np.mean(self.to_source)),
            "WER": sum(self.errors) / max(sum(self.words), 1),
            "median F0 error (semitones)": float(np.nanmedian(self.f0_error)),
            "F0 correlation with source": float(np.nanmean(self.f0_corr)),
        }


def clip_seconds(u: Utterance) -> float:
    return sf.info(str(u.path)).duration


def budget_clips(clips: Sequence[Utterance], seconds: float) -> list[Utterance]:
    """The shortest prefix of `clips` that holds at least `seconds` of audio (all of them if none does)."""
    chosen, total = [], 0.0
    for u in clips:
        if total >= seconds:
            break
        chosen.append(u)
        total += clip_seconds(u)
    return chosen


def evaluate_cloning(
    vc: VoiceConverter,
    manifest: str | Path,
    budgets: Sequence[float] = (30.0, 60.0, 180.0),
    sources_per_voice: int = 4,
    retrieval: Sequence[float] = (0.25, 0.5, 1.0),
    adapt_config: AdaptConfig | None = None,
    progress: bool = True,
    spaces: Sequence[str] = (DEFAULT_SPACE,),
    details: Sequence[float] = (),
    content_norms: Sequence[float] = (),
    f0_spreads: Sequence[float] = (),
) -> dict:
    """Run the protocol; returns {"budgets": {B: {condition: summary}}, "differences": [...], "source WER": w, ...}."""
    parsed = {spec: parse_space(spec) for spec in spaces}  # a bad one is refused before any work
    add_ons = {"detail": details, "content_norm": content_norms, "f0_spread": f0_spreads}
    if f0_spreads:
        vc.check_melody_input()  # now, not after the first adaptation
    heldout = read_manifest(manifest, split="test_voice")
    by_voice: dict[str, list[Utterance]] = {}
    for u in heldout:
        by_voice.setdefault(u.speaker, []).append(u)
    voices = sorted(by_voice)
    if len(voices) < 2:
        raise ValueError(
            f"{manifest}: the cloning protocol needs at least 2 held-out voices (test_voice split), found {len(voices)}"
        )
    for v in voices:
        if len(by_voice[v]) < JUDGE_CLIPS + sources_per_voice + 1:
            raise ValueError(
                f"{manifest}: held-out voice {v} has {len(by_voice[v])} clips; the protocol needs at least {JUDGE_CLIPS + sources_per_voice + 1}"
            )
    rate = vc.sample_rate
    enc, asr = SpeakerEncoder(), Transcriber()
    judge_refs = {v: by_voice[v][-JUDGE_CLIPS:] for v in voices}
    ref_emb = {}
    target_hz = {}
    # How well the recogniser reads each voice itself: converting into a voice
    # it reads poorly raises the WER without any word being lost.
    own_words: dict[str, list[tuple[int, int]]] = {}
    for v in voices:
        audio = [vc.load_audio(u.path) for u in judge_refs[v]]
        own_words[v] = [word_errors(u.text, asr.transcribe(a, rate)) for u, a in zip(judge_refs[v], audio)]
        e = enc.embed_many(audio, rate).mean(0)
        ref_emb[v] = e / np.linalg.norm(e)
        target_hz[v] = float(np.nanmedian([median_f0(a, rate) for a in audio]))
    sources = {v: by_voice[v][-JUDGE_CLIPS - sources_per_voice : -JUDGE_CLIPS] for v in voices}
    source_words = {u.path: word_errors(u.text, asr.transcribe(vc.load_audio(u.path), rate)) for v in voices for u in sources[v]}
    pool = {v: by_voice[v][: -JUDGE_CLIPS - sources_per_voice] for v in voices}
    # What each target converts, in the order of every run's scores (and of "conversions").
    converted = {t: [u for v in voices if v != t for u in sources[v]] for t in voices}

    results: dict[float, dict[str, Scores]] = {}
    adapt_seconds: dict[float, list[float]] = {}
    audio_seconds: dict[float, list[float]] = {}  # what each budget really got (a short pool gives less)
    for budget in budgets:
        results[budget] = {c: Scores() for c in conditions(retrieval, spaces, add_ons)}
        adapt_seconds[budget] = []
        audio_seconds[budget] = []
        for target in tqdm(voices, desc=f"cloning {budget:g} s", disable=not progress):
            clips = budget_clips(pool[target], budget)
            audio_seconds[budget].append(sum(clip_seconds(u) for u in clips))
            zero_shot = vc.speaker_vector([u.path for u in clips])
            clips_hz = vc.target_f0([u.path for u in clips])["median_hz"]
            clips_spread = vc.target_spread([u.path for u in clips]) if f0_spreads else None
            started = time.perf_counter()
            adapted = vc.adapt([u.path for u in clips], f"{target}_adapted", config=adapt_config, progress=False)
            adapt_seconds[budget].append(time.perf_counter() - started)
            name = f"{target}_adapted"
            # Every space keys the same frames (the adaptation's cleaned utterances).
            stored = adapted.matching_for(name)
            matching = {spec: stored.respace(adapted.model, *parsed[spec]) for spec in spaces}
            runs: dict[str, tuple[VoiceConverter, str | torch.Tensor, dict]] = {
                "zero-shot": (vc, zero_shot, {}),
                # A vector target has no F0 statistics of its own: the clips' median F0 (measured once) stands in.
                "zero-shot + match_pitch": (vc, zero_shot, {"match_pitch": True, "target_hz": clips_hz}),
                "adapted": (adapted, name, {}),
                **{
                    retrieval_condition(r, spec): (adapted, name, {"retrieval": r, "matching": matching[spec]})
                    for spec in spaces
                    for r in retrieval
                },
                "adapted + match_pitch": (adapted, name, {"match_pitch": True}),
            }
            for cond, (plain, option, value) in add_on_conditions(add_ons, retrieval, spaces).items():
                converter, voice, options = runs[plain]
                bare = plain.split(" + ")[0] == "zero-shot"
                if option == "content_norm" and bare:  # a bare vector: the clips' statistics
                    options = {**options, "matching": vc.matching_set([u.path for u in clips])}
                if option == "f0_spread" and bare:  # likewise the clips' melody spread
                    options = {**options, "target_spread": clips_spread}
                runs[cond] = (converter, voice, {**options, option: value})
            for u in converted[target]:
                src = vc.load_audio(u.path)
                for condition, (converter, voice, options) in runs.items():
                    out = converter.convert(src, voice, **options)
                    s = results[budget][condition]
                    e = enc.embed(out, rate)
                    s.to_target.append(float(e @ ref_emb[target]))
                    s.to_source.append(float(e @ ref_emb[u.speaker]))
                    errors, words = word_errors(u.text, asr.transcribe(out, rate))
                    s.errors.append(errors)
                    s.words.append(words)
                    out_hz = median_f0(out, rate)
                    s.f0_error.append(abs(semitones_between(target_hz[target], out_hz)) if math.isfinite(out_hz) else math.nan)
                    s.f0_corr.append(f0_correlation(src, out, rate))
    n_source = sum(n for _, n in source_words.values())
    own = [c for v in voices for c in own_words[v]]  # every voice is the target of as many conversions
    return {
        "target WER": sum(e for e, _ in own) / max(sum(n for _, n in own), 1),
        "budgets": {b: {c: s.summary() for c, s in per.items()} for b, per in results.items()},
        # Each retrieval condition of another key space is paired with the default space's at its ratio,
        # each condition with an add-on with the same condition without it.
        "differences": differences(
            results,
            {
                **{retrieval_condition(r, spec): retrieval_condition(r) for spec in spaces for r in retrieval},
                # "adapted + detail D" is paired with "adapted" as every adapted condition is.
                **{c: plain for c, (plain, _, _) in add_on_conditions(add_ons, retrieval, spaces).items() if plain != "adapted"},
            },
        ),
        "source WER": sum(e for e, _ in source_words.values()) / max(n_source, 1),
        "adaptation seconds": {b: float(np.mean(t)) for b, t in adapt_seconds.items()},
        "audio seconds": {b: float(np.mean(t)) for b, t in audio_seconds.items()},
        "conversions per condition": len(next(iter(results.values()))["zero-shot"].to_target),
        # [target voice, source clip's file name] of each conversion, in the order of
        # "scores" and the same in every budget; names, not paths, so runs made in
        # two checkouts still pair. compare_runs checks two runs agree on it.
        "conversions": [[t, Path(u.path).name] for t in voices for u in converted[t]],
        # Per conversion, in the same order in every run of the protocol, so two
        # runs (two adaptation settings, say) can be paired conversion by conversion.
        "scores": {b: {c: asdict(s) for c, s in per.items()} for b, per in results.items()},
    }


def differences(
    results: dict[float, dict[str, Scores]], twins: dict[str, str] | None = None
) -> list[tuple[float, str, str, str, Difference]]:
    """(budget, measure, condition, baseline, Difference) for the comparisons the protocol claims.

    twins: condition -> another condition it is also paired with (a key space's
    retrieval with the default space's at the same ratio).
    """
    twins = twins or {}
    rows: list[tuple[float, str, str, str, Difference]] = []
    for budget, per in results.items():
        base, adapted = per["zero-shot"], per["adapted"]
        rows.append(
            (budget, "similarity to target", "adapted", "zero-shot", paired_difference(adapted.to_target, base.to_target))
        )
        wer_base = adapted.wer_per_clip()
        # What fine-tuning on one voice costs in words (README: it did on the synthetic model).
        rows.append((budget, "WER per clip", "adapted", "zero-shot", paired_difference(wer_base, base.wer_per_clip())))
        for cond in [c for c in per if c.startswith("adapted + ")]:
            s = per[cond]
            rows.append((budget, "similarity to target", cond, "adapted", paired_difference(s.to_target, adapted.to_target)))
            wer = s.wer_per_clip()
            rows.append((budget, "WER per clip", cond, "adapted", paired_difference(wer, wer_base)))
            twin = twins.get(cond, cond)
            if twin != cond and twin in per:
                other = per[twin]
                rows.append((budget, "similarity to target", cond, twin, paired_difference(s.to_target, other.to_target)))
                rows.append((budget, "WER per clip", cond, twin, paired_difference(wer, other.wer_per_clip())))
        for cond, base_name in (("adapted + match_pitch", "adapted"), ("zero-shot + match_pitch", "zero-shot")):
            baseline = per[base_name]
            shifted = per[cond]
            rows.append(
                (budget, "|F0 error| (semitones)", cond, base_name, paired_difference(shifted.f0_error, baseline.f0_error))
            )
        rows.append(
            (
                budget,
                "similarity to target",
                "zero-shot + match_pitch",
                "zero-shot",
                paired_difference(per["zero-shot + match_pitch"].to_target, base.to_target),
            )
        )
        for cond in [c for c in per if c.startswith("zero-shot + ") and c != "zero-shot + match_pitch"]:
            s = per[cond]
            for paired_with in dict.fromkeys(("zero-shot", twins.get(cond, "zero-shot"))):
                rows.append(
                    (
                        budget,
                        "similarity to target",
                        cond,
                        paired_with,
                        paired_difference(s.to_target, per[paired_with].to_target),
                    )
                )
                rows.append(
                    (
                        budget,
                        "WER per clip",
                        cond,
                        paired_with,
                        paired_difference(s.wer_per_clip(), per[paired_with].wer_per_clip()),
                    )
                )
    return rows


def difference_cell(d: Difference) -> str:
    """'+0.012 [-0.003, +0.027], 11/18': mean, 95% interval, conversions above 0."""
    return f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}], {d.above}/{d.n}"


def to_markdown(report: dict) -> str:
    lines = [
        f"{report['conversions per condition']} conversions per condition and budget (sources: other held-out voices); "
        f"untouched sources' WER {report['source WER']:.3f}; the target voices' own clips' WER "
        f"{report['target WER']:.3f}.",
        "",
        "| budget | condition | closer to target | sim. target | sim. source | WER | median F0 error (st) | F0 corr. |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for budget, per in report["budgets"].items():
        for cond, s in per.items():
            lines.append(
                f"| {budget:g} s | {cond} | {s['closer to target (share)']:.3f} | {s['similarity to target']:.3f} | "
                f"{s['similarity to source']:.3f} | {s['WER']:.3f} | {s['median F0 error (semitones)']:.2f} | {s['F0 correlation with source']:.3f} |"
            )
    lines += ["", "Paired per-conversion differences (condition - baseline), mean [95% CI], count above 0:", ""]
    lines += ["| budget | measure | condition | baseline | difference |", "| --- | --- | --- | --- | --- |"]
    for budget, measure, cond, base, d in report["differences"]:
        lines.append(f"| {budget:g} s | {measure} | {cond} | {base} | {difference_cell(d)} |")
    lines += [
        "",
        "Adaptation time per voice: "
        + ", ".join(
            f"{b:g} s budget ({report['audio seconds'][b]:.0f} s of clips): {t:.0f} s"
            for b, t in report["adaptation seconds"].items()
        ),
    ]
    return "\n".join(lines) + "\n"


def compare_runs(new: dict, old: dict, names: tuple[str, str] = ("new", "old")) -> str:
    """Markdown: two runs of the protocol (two adaptation settings, say) paired conversion by conversion.

    new, old: the JSON `voicevae evaluate --cloning --out` writes. Every
    condition and budget both ran is paired; the runs must have converted the
    same sources (same manifest and --cloning-sources), which is checked.
    """
    for report, name in zip((new, old), names):
        if "scores" not in report:
            raise ValueError(f"{name}: holds no per-conversion scores (written before they were stored); run it again")
    if new["conversions per condition"] != old["conversions per condition"] or not math.isclose(
        new["source WER"], old["source WER"]
    ):
        raise ValueError(
            f"{names[0]} and {names[1]} converted different sources ({new['conversions per condition']} vs "
            f"{old['conversions per condition']} conversions, source WER {new['source WER']:.3f} vs {old['source WER']:.3f}): "
            "run both with the same --manifest and --cloning-sources"
        )
    # Reports written before the pairs were stored hold only the counts above.
    if "conversions" in new and "conversions" in old and new["conversions"] != old["conversions"]:
        differ = next(i for i, (a, b) in enumerate(zip(new["conversions"], old["conversions"])) if a != b)
        raise ValueError(
            f"{names[0]} and {names[1]} converted different sources: conversion {differ + 1} is "
            f"{new['conversions'][differ][1]} -> {new['conversions'][differ][0]} in {names[0]} and "
            f"{old['conversions'][differ][1]} -> {old['conversions'][differ][0]} in {names[1]}; "
            "run both with the same --manifest and --cloning-sources"
        )
    lines = [
        f"Paired per-conversion differences, {names[0]} - {names[1]}, mean [95% CI], count above 0:",
        "",
        "| budget | condition | closer to target | similarity to target | WER per clip |",
        "| --- | --- | --- | --- | --- |",
    ]
    # Budgets are string keys once read back from JSON ("60.0"), floats in a report made in Python.
    ours, theirs = ({float(k): v for k, v in r["scores"].items()} for r in (new, old))
    shared = [b for b in ours if b in theirs]
    if not shared:
        raise ValueError(f"{names[0]} and {names[1]} share no budget")
    for budget in shared:
        for cond in [c for c in ours[budget] if c in theirs[budget]]:
            a, b = Scores(**ours[budget][cond]), Scores(**theirs[budget][cond])
            diffs = [
                paired_difference(a.closer(), b.closer()),
                paired_difference(a.to_target, b.to_target),
                paired_difference(a.wer_per_clip(), b.wer_per_clip()),
            ]
            lines.append(f"| {budget:g} s | {cond} | " + " | ".join(difference_cell(d) for d in diffs) + " |")
    return "\n".join(lines) + "\n"
