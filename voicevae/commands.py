"""`voicevae convert`, `resynth`, `score` and `voices`: the API over files and folders.

Inputs may be files or folders (searched recursively for audio by
`batch.collect_inputs`); outputs mirror each folder's tree under --out-dir.
Existing outputs are never replaced without --force. A file that fails is
reported on stderr and the rest still run; the exit status is 1 if any
failed.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from .api import DEFAULT_VOCODER, METHODS, VoiceConverter, load, needs_clips
from .audio import OUTPUT_FORMATS, AudioError
from .batch import collect_inputs
from .postfilter import add_argument as add_postfilter_argument


def _common(p: argparse.ArgumentParser, vocoder: bool = True) -> None:
    p.add_argument("--model", default=None, help="model.pt or a folder with model.pt + vectors.pt (default: the shipped model)")
    p.add_argument("--vectors", default=None, help="vector file (default: vectors.pt beside the model)")
    if vocoder:  # scoring never makes audio
        p.add_argument(
            "--vocoder",
            default=DEFAULT_VOCODER,
            help=f"fast, hifigan, griffinlim, or a vocoder checkpoint (default {DEFAULT_VOCODER})",
        )
        add_postfilter_argument(p)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def _io(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    p.add_argument("-o", "--out-dir", required=True, help="output folder (mirrors the input tree)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--batch-size", type=int, default=None, help="clips vocoded together (default: 16 on a GPU, 1 on the CPU)")
    p.add_argument("--format", choices=OUTPUT_FORMATS, default="wav", help="output format (default wav, 16-bit PCM)")
    p.add_argument("--sample-rate", type=int, default=None, help="output sample rate in Hz (default: the model's, 22050)")


def add_arguments_convert(p: argparse.ArgumentParser) -> None:
    _io(p)
    _common(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target", help="a speaker name from the vector file")
    target.add_argument(
        "--target-clips", nargs="+", metavar="CLIP", help="1..N reference clips of an unseen voice (few-shot cloning)"
    )
    target.add_argument("--random-voice", type=int, metavar="SEED", help="a new voice sampled from the aggregated posterior")
    add_conversion_settings(p)
    p.add_argument(
        "--retrieval",
        type=float,
        default=0.0,
        metavar="R",
        help="0..1: blend each frame with the target's own nearest frames (an adapted voice, or --target-clips)",
    )
    p.add_argument(
        "--detail",
        type=float,
        default=0.0,
        metavar="D",
        help="0..1: add back the source's own detail that the model loses (its log-mel minus its resynthesis)",
    )
    p.add_argument(
        "--content-norm",
        type=float,
        default=0.0,
        metavar="C",
        help="0..1: move the source's content latents to the target's statistics (a named voice's, or --target-clips')",
    )
    p.add_argument(
        "--f0-spread",
        type=float,
        default=0.0,
        metavar="S",
        help="0..1: move the range of the source's melody to the target's (a named voice's, or --target-clips')",
    )
    p.add_argument("--match-pitch", action="store_true", help="move the output's median pitch to the target's")
    p.add_argument(
        "--pitch-shift", type=float, default=0.0, metavar="SEMITONES", help="shift the output's pitch (after --match-pitch)"
    )
    p.add_argument(
        "--attribute",
        action="append",
        default=[],
        metavar="NAME=AMOUNT",
        help="add an attribute direction, e.g. gender=f=0.5 (repeatable)",
    )


def add_conversion_settings(p: argparse.ArgumentParser) -> None:
    """--strength and --method, shared by `voicevae convert` and `voicevae evaluate`."""
    p.add_argument("--strength", type=float, default=1.0, help="0 keeps the source voice, 1 reaches the target (default 1)")
    p.add_argument("--method", choices=METHODS, default="arithmetic", help="latent arithmetic or speaker-statistics transfer")


def add_arguments_resynth(p: argparse.ArgumentParser) -> None:
    _io(p)
    _common(p)


def add_arguments_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    _common(p, vocoder=False)
    p.add_argument("--samples", type=int, default=32, help="importance samples per clip (default 32)")


def parse_attributes(items: list[str]) -> dict[str, float]:
    """'gender=f=0.5' -> {'gender=f': 0.5}: the amount follows the last '='."""
    out = {}
    for item in items:
        name, sep, amount = item.rpartition("=")
        try:
            out[name] = float(amount)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ValueError(f"--attribute {item!r}: expected NAME=AMOUNT, e.g. gender=f=0.5")
    return out


def _converter(args: argparse.Namespace) -> VoiceConverter:
    # Griffin-Lim has no weights to load: the cheapest stand-in where no audio is made.
    settings = {"postfilter": args.postfilter} if hasattr(args, "postfilter") else {}
    return load(args.model, vocoder=getattr(args, "vocoder", "griffinlim"), device=args.device, vectors=args.vectors, **settings)


def _run_batch(args: argparse.Namespace, vc: VoiceConverter, target: str | torch.Tensor | list[Path] | None) -> int:
    groups: dict[Path, list[Path]] = {}
    for f, root in collect_inputs(args.inputs):
        groups.setdefault(root, []).append(f)
    attrs = parse_attributes(getattr(args, "attribute", []))
    # Names are checked once, before any file: a typo fails in a line, not once per clip.
    if isinstance(target, str):
        vc.target_vector(target)
    unknown = [a for a in attrs if a not in vc.attributes]
    if unknown:
        from .vectors import unknown_message

        raise ValueError(unknown_message("attribute", unknown[0], vc.attributes, "voicevae voices --attributes"))
    failed = 0
    for root, files in groups.items():
        report = vc.convert_files(
            files,
            args.out_dir,
            target=target,
            strength=getattr(args, "strength", 1.0),
            attributes=attrs,
            method=getattr(args, "method", "arithmetic"),
            root=root,
            force=args.force,
            progress=not args.quiet,
            batch_size=args.batch_size,
            retrieval=getattr(args, "retrieval", 0.0),
            pitch_shift=getattr(args, "pitch_shift", 0.0),
            match_pitch=getattr(args, "match_pitch", False),
            detail=getattr(args, "detail", 0.0),
            content_norm=getattr(args, "content_norm", 0.0),
            f0_spread=getattr(args, "f0_spread", 0.0),
            fmt=args.format,
            sample_rate=args.sample_rate,
        )
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        for _, reason in report.failed:
            print(f"failed: {reason}", file=sys.stderr)
        failed += len(report.failed)
        print(f"wrote {len(report.written)} file(s) to {args.out_dir}")
    return 1 if failed else 0


def run_convert(args: argparse.Namespace) -> int:
    vc = _converter(args)
    if args.target is not None:
        target: str | torch.Tensor | list[Path] = args.target
    elif args.target_clips:
        clips = [Path(c) for c in args.target_clips]
        keep = needs_clips(args.retrieval, args.content_norm, args.f0_spread, args.match_pitch)
        target = clips if keep else vc.speaker_vector(clips)
    else:
        target = vc.random_voice(seed=args.random_voice)
    return _run_batch(args, vc, target)


def run_resynth(args: argparse.Namespace) -> int:
    return _run_batch(args, _converter(args), None)


def run_score(args: argparse.Namespace) -> int:
    vc = _converter(args)
    threshold = vc.anomaly_threshold
    print(
        f"# nats per mel frame: log p(x) (importance sampling, {args.samples} samples) and the likelihood ratio "
        f"(log p(x) minus the clip's stationary log-likelihood); "
        + (
            f"anomaly threshold on the ratio {threshold:.2f}"
            if math.isfinite(threshold)
            else "no anomaly threshold (see the vector file)"
        )
    )
    print("path\tlog_px_per_frame\tratio_per_frame\tverdict")
    failed = 0
    for f, _ in collect_inputs(args.inputs):
        try:
            lp, ratio = vc.scores(f, n_samples=args.samples)
        except AudioError as e:
            print(f"failed: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{f}\t{lp:.3f}\t{ratio:.3f}\t{'unlike training data' if ratio < threshold else 'ok'}")
    return 1 if failed else 0


def add_arguments_voices(p: argparse.ArgumentParser) -> None:
    _common(p, vocoder=False)
    p.add_argument("--attributes", action="store_true", help="list the attribute directions too")


def run_voices(args: argparse.Namespace) -> int:
    """Print the model's voices (one per line, with clip counts) and, with --attributes, its directions."""
    vc = _converter(args)
    if vc.vectors is None:
        raise ValueError(f"{args.model or 'the model'}: has no vector file, so no named voices; give --vectors")
    counts = vc.vectors.labels["speaker"].counts
    print(f"# {len(vc.speakers)} voices (clips averaged into each vector)")
    for s in vc.speakers:
        print(f"{s}\t{counts[s]}")
    if args.attributes:
        print(f"# {len(vc.attributes)} attributes (use as --attribute NAME=AMOUNT)")
        for a in vc.attributes:
            print(a)
    return 0
