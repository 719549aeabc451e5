"""`voicevae evaluate`: the fixed voice-conversion protocol.

On a manifest with splits `train`, `valid` (held-out sentences of the
training voices) and `test_voice` (held-out voices):

1. Seen voices: up to --max-pairs `valid` clips, taken round-robin over the
   speakers (sorted) so that every training voice is a source, are each
   converted to another training voice (the next speaker in sorted order after
   its own, so the pairs are fixed), using the target's speaker vector from the
   vector file.
2. Unseen voices (few-shot cloning): `valid` clips are converted to each
   held-out voice, whose vector is the mean latent of --ref-clips of its clips.
3. For every conversion: Resemblyzer similarity of the output to the target
   voice and to the source voice (each voice's reference embedding is the mean
   over up to 8 of its clips that are not the ones converted), the share of
   outputs closer to the target than to the source, pocketsphinx word error rate
   of the outputs against the text next to that of the unconverted sources
   and of the sources resynthesized with their own voice,
   and the correlation of log-F0 between source and output.
4. Held-out log p(x) per frame of `valid` and `test_voice` clips, and the
   AUROC with which that score separates speech from non-speech (white and
   pink noise, tone chords, clicks, hum) generated with a fixed seed: once
   for the training voices' held-out sentences, once with the unseen voices;
   the same for the likelihood ratio the anomaly threshold is set on
   (complexity.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .api import DEFAULT_VOCODER, VoiceConverter, check_method, load
from .audio import AudioError, load_audio
from .commands import add_conversion_settings
from .corpora import Utterance, read_manifest
from .metrics import SpeakerEncoder, Transcriber, auroc, f0_correlation, word_errors
from .postfilter import add_argument as add_postfilter_argument
from .streaming import check_fraction


@dataclass
class Conversion:
    source: Utterance
    target: str  # speaker name
    output: torch.Tensor


def non_speech_clips(rate: int, seconds: float = 2.5, seed: int = 0) -> dict[str, torch.Tensor]:
    """Sounds that are not speech, for the anomaly check: (T,) each, at `rate`."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(spectrum.size), 1)), n)  # 1/f power
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0, 523.3))
    melody_f = np.repeat(rng.choice([220, 247, 262, 294, 330, 349, 392], size=10), n // 10 + 1)[:n]
    melody = np.sin(2 * np.pi * np.cumsum(melody_f) / rate) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    clicks = np.zeros(n)
    clicks[:: rate // 8] = 1.0
    hum = np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t)
    sounds = {"white-noise": white, "pink-noise": pink, "tone-chord": chord, "melody": melody, "clicks": clicks, "hum": hum}
    return {k: torch.from_numpy(0.3 * v / np.abs(v).max()).float() for k, v in sounds.items()}


# Non-speech recordings in installed Debian main packages (the recorded corpus's
# hedgewars-data and fillets-ng-data, `make corpus-recorded`): the two games'
# sound effects and music, read in place and never shipped (their licences are
# in /usr/share/doc/<package>/copyright). Effects whose names say they may hold
# a voice (a hedgehog's "ow", a chant, a countdown call) are left out: this set
# is for sounds that are not speech.
PACKAGED_SOUND_GLOBS = (
    "/usr/share/games/hedgewars/Data/Sounds/*.ogg",
    "/usr/share/games/hedgewars/Data/Music/*.ogg",
    "/usr/share/games/fillets-ng/music/*.ogg",
)
VOICED_SOUND_NAMES = ("hell_", "hog", "Hellish", "Yoohoo", "Kiss", "countdown", "homerun", "suddendeath", "extratime", "custom")


def packaged_sounds(rate: int, seconds: float = 4.0) -> dict[str, torch.Tensor]:
    """Installed non-speech recordings (see PACKAGED_SOUND_GLOBS), each at most `seconds` from its middle: (T,) at `rate`.

    {} where none are installed; clips under half a second are skipped.
    """
    out = {}
    for pattern in PACKAGED_SOUND_GLOBS:
        for path in sorted(Path("/").glob(pattern.lstrip("/"))):
            if path.name.startswith(VOICED_SOUND_NAMES):
                continue
            try:
                wav = load_audio(path, rate)
            except AudioError:  # a sound that is silent or unreadable is not a test of the score
                continue
            n = int(seconds * rate)
            start = max(0, (wav.shape[0] - n) // 2)
            if wav.shape[0] >= rate // 2:
                out[str(path)] = wav[start : start + n]
    return out


def spread(utts: list[Utterance], n: int) -> list[Utterance]:
    """Up to n utterances taken round-robin over the speakers in sorted order.

    The manifest lists clips speaker by speaker, so its first n clips would
    cover only a couple of voices; the protocol must cover them all.
    """
    by_spk: dict[str, list[Utterance]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker, []).append(u)
    queues = [by_spk[s] for s in sorted(by_spk)]
    chosen: list[Utterance] = []
    for i in range(max((len(q) for q in queues), default=0)):
        chosen += [q[i] for q in queues if i < len(q)]
    return chosen[:n]


def _ref_embedding(enc: SpeakerEncoder, utts: list[Utterance], exclude: set[Path], vc: VoiceConverter, k: int = 8) -> np.ndarray:
    chosen = [u for u in utts if u.path not in exclude][:k]
    if not chosen:
        chosen = utts[:k]
    e = enc.embed_many([vc.load_audio(u.path) for u in chosen], vc.sample_rate).mean(0)
    return e / np.linalg.norm(e)


def evaluate(
    vc: VoiceConverter,
    manifest: str | Path,
    max_pairs: int = 32,
    ref_clips: int = 3,
    is_samples: int = 16,
    progress: bool = True,
    group_by: str | None = None,
    strength: float = 1.0,
    method: str = "arithmetic",
    content_norm: float = 0.0,
) -> dict[str, dict[str, float]]:
    """Run the protocol; returns {"seen voices": {...}, "unseen voices": {...}, "likelihood": {...}}.

    group_by: a manifest label (e.g. "engine"); the conversion sections then
    also report the word error rates per value of the source clip's label, so
    a mean over easy and hard voices cannot hide either.
    strength, method: passed to every conversion (VoiceConverter.convert), so
    the protocol measures the trade between reaching the target voice and
    keeping the words at the settings a user would convert with.
    content_norm: likewise; a named voice's statistics from the vector file,
    an unseen voice's from its reference clips.
    """
    # Checked here, not at the first conversion, which comes after minutes of
    # recognising and resynthesizing the sources.
    check_method(method)
    check_fraction(content_norm, "content_norm")
    train = read_manifest(manifest, split="train")
    valid = read_manifest(manifest, split="valid")
    heldout = read_manifest(manifest, split="test_voice")
    if not valid:
        raise ValueError(f"{manifest}: no 'valid' clips (held-out sentences) to evaluate on")
    by_spk: dict[str, list[Utterance]] = {}
    for u in train + valid + heldout:
        by_spk.setdefault(u.speaker, []).append(u)
    seen = sorted({u.speaker for u in train} & set(vc.speakers))
    for name in seen if content_norm else ():
        vc.content_stats_for(name)  # a vector file without them is refused now, not after the sources are scored
    sources = spread(valid, max_pairs)
    if group_by is not None and any(group_by not in u.labels for u in sources):
        raise ValueError(f"{manifest}: --group-by {group_by!r} is not a label column of every clip")
    groups = [u.labels[group_by] if group_by else None for u in sources]
    enc, asr = SpeakerEncoder(), Transcriber()
    sources_set = {u.path for u in sources}
    ref_emb = {s: _ref_embedding(enc, by_spk[s], sources_set, vc) for s in sorted(by_spk)}

    results: dict[str, dict[str, float]] = {}
    words = {"source": _word_errors(asr, [(u.text, vc.load_audio(u.path)) for u in sources], vc.sample_rate)}
    # The same clips through the VAE and vocoder with their own voice: what
    # the model costs before any conversion.
    words["resynthesized source"] = _word_errors(asr, [(u.text, vc.resynthesize(u.path)) for u in sources], vc.sample_rate)

    # 1. seen voices
    convs = []
    for u in tqdm(sources, desc="convert (seen voices)", disable=not progress):
        target = seen[(seen.index(u.speaker) + 1) % len(seen)] if u.speaker in seen else seen[0]
        out = vc.convert(u.path, target=target, strength=strength, method=method, content_norm=content_norm)
        convs.append(Conversion(u, target, out))
    results["seen voices"] = _score(convs, enc, asr, ref_emb, vc, words, groups, group_by)

    # 2. unseen voices: few-shot vectors from reference clips not used elsewhere
    if heldout:
        held_spk = sorted({u.speaker for u in heldout})
        vectors = {s: vc.speaker_vector([u.path for u in by_spk[s][:ref_clips]]) for s in held_spk}
        matching = {s: vc.matching_set([u.path for u in by_spk[s][:ref_clips]]) if content_norm else None for s in held_spk}
        convs = []
        for i, u in enumerate(tqdm(sources, desc="convert (unseen voices)", disable=not progress)):
            s = held_spk[i % len(held_spk)]
            out = vc.convert(
                u.path, target=vectors[s], strength=strength, method=method, content_norm=content_norm, matching=matching[s]
            )
            convs.append(Conversion(u, s, out))
        refs = {**ref_emb, **{s: _ref_embedding(enc, by_spk[s], {u.path for u in by_spk[s][:ref_clips]}, vc) for s in held_spk}}
        results["unseen voices (few-shot)"] = _score(convs, enc, asr, refs, vc, words, groups, group_by)

    # 3. likelihood and anomaly detection. The goal is stated for held-out
    # sentences of the training voices; the AUROC over all voices shows how
    # far the score carries to voices the model never saw.
    scored = sources + spread(heldout, max_pairs)
    n_valid = len(sources)
    speech, speech_ratio = zip(
        *[vc.scores(u.path, n_samples=is_samples) for u in tqdm(scored, desc="log p(x)", disable=not progress)]
    )
    noise, noise_ratio = zip(*[vc.scores(w, n_samples=is_samples) for w in non_speech_clips(vc.sample_rate).values()])
    results["likelihood"] = {
        "held-out log p(x) / frame (valid)": float(np.mean(speech[:n_valid])),
        "held-out log p(x) / frame (unseen voices)": float(np.mean(speech[n_valid:])) if heldout else math.nan,
        "non-speech log p(x) / frame": float(np.mean(noise)),
        "highest non-speech log p(x) / frame": float(np.max(noise)),
        "AUROC speech vs non-speech (training voices)": auroc(speech[:n_valid], noise),
        "AUROC speech vs non-speech (all voices)": auroc(speech, noise),
        # The anomaly score the product flags with (complexity.py).
        "AUROC speech vs non-speech, likelihood ratio (training voices)": auroc(speech_ratio[:n_valid], noise_ratio),
        "AUROC speech vs non-speech, likelihood ratio (all voices)": auroc(speech_ratio, noise_ratio),
        "clips": float(len(speech) + len(noise)),
    }
    return results


def _word_errors(asr: Transcriber, items: list[tuple[str, torch.Tensor]], rate: int) -> list[tuple[int, int]]:
    """(word errors, reference words) of each (text, audio) item."""
    return [word_errors(text, asr.transcribe(wav, rate)) for text, wav in items]


def _wer(counts: list[tuple[int, int]]) -> float:
    return sum(e for e, _ in counts) / max(sum(n for _, n in counts), 1)


def _score(
    convs: list[Conversion],
    enc: SpeakerEncoder,
    asr: Transcriber,
    ref_emb: dict[str, np.ndarray],
    vc: VoiceConverter,
    words: dict[str, list[tuple[int, int]]],
    groups: list[str | None],
    group_by: str | None,
) -> dict[str, float]:
    rate = vc.sample_rate
    to_target, to_source, closer, f0 = [], [], 0, []
    for c in convs:
        e = enc.embed(c.output, rate)
        st, ss = float(e @ ref_emb[c.target]), float(e @ ref_emb[c.source.speaker])
        to_target.append(st)
        to_source.append(ss)
        closer += st > ss
        r = f0_correlation(vc.load_audio(c.source.path), c.output, rate)
        if not math.isnan(r):
            f0.append(r)
    words = {"converted": _word_errors(asr, [(c.source.text, c.output) for c in convs], rate), **words}
    scores = {
        "conversions": float(len(convs)),
        "similarity to target": float(np.mean(to_target)),
        "similarity to source": float(np.mean(to_source)),
        "closer to target (share)": closer / len(convs),
        **{f"WER {k}": _wer(v) for k, v in words.items()},
        "F0 correlation": float(np.mean(f0)) if f0 else math.nan,
    }
    if group_by:
        for g in sorted({g for g in groups if g is not None}):
            for k, v in words.items():
                scores[f"WER {k} [{group_by}={g}]"] = _wer([c for c, gc in zip(v, groups) if gc == g])
    return scores


def to_markdown(results: dict[str, dict[str, float]]) -> str:
    lines = []
    for section, values in results.items():
        lines += [f"**{section}**", "", "| measure | value |", "| --- | --- |"]
        for k, v in values.items():
            lines.append(f"| {k} | {v:.0f} |" if k in ("conversions", "clips") else f"| {k} | {v:.3f} |")
        lines.append("")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model.pt or folder (default: the shipped model)")
    p.add_argument("--manifest", default="data/synthetic/manifest.csv", help="manifest with train/valid/test_voice splits")
    p.add_argument("--vocoder", default=DEFAULT_VOCODER, help=f"default {DEFAULT_VOCODER}")
    p.add_argument(
        "--max-pairs", type=int, default=32, help="source clips per condition, round-robin over the voices (default 32)"
    )
    p.add_argument("--ref-clips", type=int, default=3, help="reference clips per unseen voice (default 3)")
    add_conversion_settings(p)
    p.add_argument("--group-by", help="also report WER per value of this manifest label, e.g. engine")
    p.add_argument(
        "--cloning",
        metavar="SECONDS",
        help="instead: the cloning protocol on held-out voices with these budgets, e.g. 30,60,180 (evaluate_cloning.py)",
    )
    p.add_argument("--cloning-sources", type=int, default=4, help="source clips per other held-out voice (default 4)")
    p.add_argument("--cloning-retrieval", default="0.25,0.5,1", help="retrieval ratios, one 'adapted + retrieval' condition each")
    p.add_argument(
        "--cloning-detail",
        default="",
        metavar="D,...",
        help="details (0..1], each adding 'zero-shot + detail D', 'adapted + detail D' and 'adapted + retrieval R + detail D' "
        "(stacked with the other add-ons given, at their first values)",
    )
    p.add_argument(
        "--cloning-content-norm",
        default="",
        metavar="C,...",
        help="content norms (0..1], each adding 'zero-shot + content norm C', 'adapted + content norm C' and 'adapted + retrieval R + content norm C' "
        "(stacked with the other add-ons given, at their first values)",
    )
    p.add_argument(
        "--cloning-f0-spread",
        default="",
        metavar="S,...",
        help="F0 spreads (0..1], each adding 'zero-shot + f0 spread S', 'adapted + f0 spread S' and 'adapted + retrieval R + f0 spread S' "
        "(stacked with the other add-ons given, at their first values)",
    )
    p.add_argument(
        "--cloning-spaces",
        default="content",
        help="matching-set key spaces for the retrieval conditions, e.g. content,mfcc,mfcc:2 (SPACE[:CONTEXT frames])",
    )
    p.add_argument("--adapt-steps", type=int, default=None, help="fine-tuning steps of each adaptation (default: AdaptConfig's)")
    p.add_argument(
        "--adapt-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any AdaptConfig setting, e.g. trainable=speaker_path",
    )
    p.add_argument(
        "--unseen",
        action="store_true",
        help="instead: the unseen-voices protocol on test_voice clips and packaged real recordings (evaluate_unseen.py)",
    )
    p.add_argument(
        "--baseline",
        help="with --unseen: also run this model (folder or model.pt), or read its earlier --out JSON, and pair the two clip by clip",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("NEW_JSON", "OLD_JSON"),
        help="no run, only the paired table of two earlier --out JSON files of --unseen, or of --cloning (two adaptation settings, say)",
    )
    p.add_argument("--named", default="flite_slt,flite_rms", help="with --unseen: voices real speech is converted to")
    p.add_argument("--per-voice", type=int, default=8, help="with --unseen: clips per held-out voice (default 8)")
    p.add_argument("--sources-per-target", type=int, default=6, help="with --unseen: conversions per target (default 6)")
    p.add_argument(
        "--detail",
        type=float,
        default=0.0,
        metavar="D",
        help="with --unseen: the conversions' detail, 0..1 (VoiceConverter.convert; the baseline model's too)",
    )
    p.add_argument(
        "--content-norm",
        type=float,
        default=0.0,
        metavar="C",
        help="the conversions' content norm, 0..1 (a named voice's statistics from the vector file, an unseen one's from its reference clips)",
    )
    p.add_argument(
        "--f0-spread",
        type=float,
        default=0.0,
        metavar="S",
        help="with --unseen: the conversions' F0 spread, 0..1 (a named voice's from the vector file, an unseen one's from its reference clips)",
    )
    p.add_argument("--out", help="write the markdown table here (and JSON beside it)")
    add_postfilter_argument(p)  # a baseline model gets the same
    p.add_argument("--device", default=None)


def run(args: argparse.Namespace) -> int:
    if args.out and Path(args.out).exists():  # refused before the minutes of scoring, not after
        raise FileExistsError(f"{args.out}: exists; choose another --out")
    if args.compare:
        from .evaluate_cloning import compare_runs
        from .evaluate_unseen import to_markdown as unseen_markdown

        reports = []
        for path in args.compare:
            try:
                reports.append(json.loads(Path(path).read_text()))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not a JSON report ({e})") from None
        names = (Path(args.compare[0]).stem, Path(args.compare[1]).stem)
        kinds = ["cloning" if "budgets" in r else "unseen" if "model" in r else None for r in reports]
        for path, kind in zip(args.compare, kinds):
            if kind is None:
                raise ValueError(f"{path}: not the JSON of `voicevae evaluate --unseen` or `--cloning`")
        if kinds[0] != kinds[1]:
            raise ValueError(f"--compare: {args.compare[0]} is a {kinds[0]} report and {args.compare[1]} a {kinds[1]} one")
        if kinds[0] == "cloning":
            table = compare_runs(reports[0], reports[1], names)
        else:
            table = unseen_markdown(reports[0]["model"], reports[1]["model"], names)
        print(table)
        if args.out:
            Path(args.out).write_text(table)
        return 0
    if args.cloning and args.content_norm:
        raise ValueError("--content-norm: the cloning protocol takes it as conditions of their own; use --cloning-content-norm")
    if args.f0_spread and not args.unseen:
        raise ValueError("--f0-spread is an option of --unseen; the cloning protocol's is --cloning-f0-spread")
    vc = load(args.model, vocoder=args.vocoder, device=args.device, postfilter=args.postfilter)
    if args.cloning:
        return run_cloning(args, vc)
    if args.unseen:
        return run_unseen(args, vc)
    results = evaluate(
        vc,
        args.manifest,
        args.max_pairs,
        args.ref_clips,
        group_by=args.group_by,
        strength=args.strength,
        method=args.method,
        content_norm=args.content_norm,
    )
    settings = (
        f"Settings: {args.manifest}, up to {args.max_pairs} source clips, vocoder {args.vocoder}, postfilter {args.postfilter:g}, "
        f"{args.method} conversion at strength {args.strength:g}, content norm {args.content_norm:g}, "
        f"{args.ref_clips} reference clips per unseen voice.\n\n"
    )
    table = settings + to_markdown(results)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    return 0


def _fractions(text: str, flag: str, noun: str, example: str) -> list[float]:
    """Values in (0, 1] separated by commas (empty items skipped), or a ValueError naming the flag."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected {noun}s separated by commas, e.g. {example}") from None
    if any(not 0 < v <= 1 for v in values):
        raise ValueError(f"{flag} {text!r}: each {noun} must be in (0, 1]")
    return values


def run_cloning(args: argparse.Namespace, vc: VoiceConverter) -> int:
    from .config import adapt_config
    from .evaluate_cloning import evaluate_cloning
    from .evaluate_cloning import to_markdown as cloning_markdown
    from .training.adapt import check_content_bank

    try:
        budgets = [float(b) for b in args.cloning.split(",")]
    except ValueError:
        raise ValueError(f"--cloning {args.cloning!r}: expected seconds separated by commas, e.g. 30,60,180") from None
    ratios = _fractions(args.cloning_retrieval, "--cloning-retrieval", "ratio", "0.25,0.5,1")
    details = _fractions(args.cloning_detail, "--cloning-detail", "value", "0.5,1")
    content_norms = _fractions(args.cloning_content_norm, "--cloning-content-norm", "value", "0.5,1")
    f0_spreads = _fractions(args.cloning_f0_spread, "--cloning-f0-spread", "value", "0.5,1")
    settings = {} if args.adapt_steps is None else {"steps": args.adapt_steps}
    config = adapt_config(args.adapt_set, "--adapt-set", **settings)
    check_content_bank(config, vc.vectors)  # before the minutes of scoring the judges' references
    spaces = [spec.strip() for spec in args.cloning_spaces.split(",") if spec.strip()]
    report = evaluate_cloning(
        vc,
        args.manifest,
        budgets,
        args.cloning_sources,
        ratios,
        config,
        spaces=spaces,
        details=details,
        content_norms=content_norms,
        f0_spreads=f0_spreads,
    )
    table = (
        f"Settings: {args.manifest}, vocoder {args.vocoder}, postfilter {args.postfilter:g}, adaptation {config}.\n\n"
        + cloning_markdown(report)
    )
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        rows = [
            {"budget": b, "measure": m, "condition": c, "baseline": base, **dataclasses.asdict(d)}
            for b, m, c, base, d in report["differences"]
        ]
        out.with_suffix(".json").write_text(json.dumps({**report, "differences": rows}, indent=2))
    return 0


def run_unseen(args: argparse.Namespace, vc: VoiceConverter) -> int:
    from .evaluate_unseen import heldout_clips, unseen_protocol
    from .evaluate_unseen import to_markdown as unseen_markdown

    for flag, value in (("--detail", args.detail), ("--content-norm", args.content_norm), ("--f0-spread", args.f0_spread)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{flag} {value:g}: must be in [0, 1]")
    named = [n for n in args.named.split(",") if n]
    from_json = bool(args.baseline) and Path(args.baseline).suffix == ".json"
    base = (
        load(args.baseline, vocoder=args.vocoder, device=args.device, postfilter=args.postfilter)
        if args.baseline and not from_json
        else None
    )
    for model, converter in ((args.model or "the shipped model", vc), (args.baseline, base)):
        if converter is None:
            continue
        missing = [n for n in named if n not in converter.speakers]
        if missing:
            raise ValueError(f"--named: {', '.join(missing)} not a voice of {model}")
        # A vector file without a named voice's statistics is refused now, not after the resynthesis.
        for n in named if args.content_norm else ():
            converter.content_stats_for(n)
        if args.f0_spread:
            converter.check_melody_input()
            for n in named:
                converter.target_spread(n)
    clips = heldout_clips(vc, args.manifest, args.per_voice)
    settings = dict(
        named=named,
        sources_per_target=args.sources_per_target,
        detail=args.detail,
        content_norm=args.content_norm,
        f0_spread=args.f0_spread,
    )
    report = unseen_protocol(vc, clips, args.manifest, **settings)
    baseline = unseen_protocol(base, clips, args.manifest, **settings) if base is not None else None
    if from_json:
        # An earlier run of the same protocol: the same clips in the same order, or the pairing is meaningless.
        baseline = json.loads(Path(args.baseline).read_text())["model"]
    names = (Path(args.model).name if args.model else "shipped", Path(args.baseline).name if args.baseline else "")
    table = (
        f"Settings: {args.manifest} test_voice (up to {args.per_voice} clips per voice) and packaged recordings, "
        f"{len(clips)} clips; vocoder {args.vocoder}; 3 reference clips per voice; named voices {', '.join(named)}; "
        f"detail {args.detail:g}; content norm {args.content_norm:g}; F0 spread {args.f0_spread:g}; "
        f"postfilter {args.postfilter:g}.\n\n" + unseen_markdown(report, baseline, names)
    )
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        out.with_suffix(".json").write_text(json.dumps({"model": report, "baseline": baseline}, indent=2))
    return 0
