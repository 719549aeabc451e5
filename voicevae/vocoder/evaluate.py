"""Copy-synthesis evaluation of vocoders: `voicevae eval-vocoder`.

Each clip is analysed by the front end and resynthesised by each vocoder from
its own log-mel; the output is compared with the original by PESQ-wb, STOI,
mel L1 and speaker similarity (Resemblyzer cosine). Speed (times faster
than real time) is measured on the longest clip. Scores are averaged per vocoder into a markdown
table. With `--baseline`, a second table gives each other vocoder's per-clip
difference from the baseline with a 95% confidence interval: the clips are
the same for every vocoder, so the paired difference is far less noisy than
two means read side by side. `--per-clip` keeps every clip's scores as CSV.

    voicevae eval-vocoder --clips data/synthetic/manifest.csv --split test_voice \
        --real --vocoders hifigan,griffinlim,fast --baseline griffinlim --out report.md
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..audio import AUDIO_SUFFIXES, load_audio
from ..features import MelFrontend
from ..metrics import paired_difference
from . import load_vocoder
from .base import Vocoder, check_compatible

METRICS = ("pesq_wb", "stoi", "mel_l1", "speaker_sim")


@dataclass
class Clip:
    """A named reference clip, (T,) float32 at the vocoders' rate."""

    name: str
    audio: torch.Tensor


@dataclass
class Result:
    """Scores of one vocoder: per-metric lists over clips (named in `clips`), and its speed (x real time)."""

    vocoder: str
    scores: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})
    speed: float = math.nan
    clips: list[str] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        values = [v for v in self.scores[metric] if not math.isnan(v)]
        return sum(values) / len(values) if values else math.nan


def select(items: list, limit: int | None) -> list:
    """Up to `limit` items spread evenly over the list (manifests are sorted by speaker)."""
    if limit is None or len(items) <= limit:
        return items
    stride = len(items) / limit
    return [items[int(i * stride)] for i in range(limit)]


def clips_from_source(source: str | Path, rate: int, split: str | None, limit: int | None) -> list[Clip]:
    """Clips from a folder of audio files or a manifest CSV."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not paths:
            raise ValueError(f"--clips {source}: no {'/'.join(AUDIO_SUFFIXES)} files in this folder")
    elif source.suffix.lower() == ".csv":
        from ..corpora import read_manifest

        paths = [u.path for u in read_manifest(source, split=split)]
        if not paths:
            raise ValueError(f"--clips {source}: no rows" + (f" in split {split!r}" if split else ""))
    else:
        raise ValueError(f"--clips {source}: expected a folder of audio files or a manifest .csv")
    return [Clip(p.stem, load_audio(p, rate)) for p in select(paths, limit)]


def real_speech_clips(rate: int, limit: int | None) -> list[Clip]:
    """Real human speech shipped with installed packages (voicevae.realclips)."""
    from ..realclips import load_real_clip, real_clips

    found = real_clips()
    if not found:
        raise ValueError("--real: no real speech clips are installed")
    return [Clip(f"real:{Path(c.path).stem}", load_real_clip(c, rate)) for c in select(found, limit)]


def evaluate(
    clips: list[Clip],
    vocoders: dict[str, Vocoder],
    speaker_encoder,
    speed_repeats: int = 3,
    mel_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[Result]:
    """Copy-synthesis scores of every vocoder on every clip.

    With `mel_transform` (e.g. a VAE's reconstruction) each vocoder hears the
    transformed log-mel; the scores still compare with the original audio.
    """
    from .. import metrics

    results = []
    for name, vocoder in vocoders.items():
        frontend = MelFrontend(vocoder.mel_config)
        rate = vocoder.sample_rate
        result = Result(name)
        for clip in clips:
            logmel = frontend(clip.audio.unsqueeze(0))
            # Compare on the samples the frames cover: F * hop.
            ref = clip.audio[: logmel.shape[-1] * vocoder.hop_length]
            if mel_transform is not None:
                logmel = mel_transform(logmel)
            out = vocoder.vocode(logmel)[0].cpu()
            result.scores["pesq_wb"].append(float(metrics.pesq_wb(ref, out, rate)))
            result.scores["stoi"].append(float(metrics.stoi(ref, out, rate)))
            result.scores["mel_l1"].append(float(metrics.mel_l1(ref, out, frontend)))
            result.scores["speaker_sim"].append(float(speaker_encoder.similarity(ref, out, rate)))
            result.clips.append(clip.name)
        longest = max(clips, key=lambda c: c.audio.shape[0])
        logmel = frontend(longest.audio.unsqueeze(0))
        seconds = longest.audio.shape[0] / rate
        result.speed = float(metrics.real_time_factor(functools.partial(vocoder.vocode, logmel), seconds, repeats=speed_repeats))
        results.append(result)
    return results


def markdown_table(results: list[Result], n_clips: int) -> str:
    """One row per vocoder: mean scores over the clips and the speed."""
    lines = [
        f"Copy synthesis, mean over {n_clips} clips; speed = audio seconds per compute second on the longest clip.",
        "",
        "| vocoder | PESQ-wb ↑ | STOI ↑ | mel L1 ↓ | speaker sim ↑ | x real time ↑ |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        cells = [f"{r.mean(m):.3f}" for m in METRICS]
        lines.append(f"| {r.vocoder} | " + " | ".join(cells) + f" | {r.speed:.1f} |")
    return "\n".join(lines) + "\n"


def difference_table(results: list[Result], baseline: str) -> str:
    """Each vocoder's paired difference from `baseline`, per metric: mean [95% CI]."""
    base = next((r for r in results if r.vocoder == baseline), None)
    if base is None:
        raise ValueError(f"--baseline {baseline}: not among the evaluated vocoders ({', '.join(r.vocoder for r in results)})")
    lines = [
        f"Paired difference from {baseline}, per clip: mean [95% CI]; 'clips above' counts the clips where the vocoder's speaker sim is higher.",
        "",
        "| vocoder | Δ PESQ-wb | Δ STOI | Δ mel L1 | Δ speaker sim | clips above (sim) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if r is base:
            continue
        if r.clips != base.clips:
            raise ValueError(f"{r.vocoder} and {baseline} were scored on different clips")
        diffs = {m: paired_difference(r.scores[m], base.scores[m]) for m in METRICS}
        cells = [f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]" for d in diffs.values()]
        sim = diffs["speaker_sim"]
        lines.append(f"| {r.vocoder} | " + " | ".join(cells) + f" | {sim.above}/{sim.n} |")
    return "\n".join(lines) + "\n"


def write_per_clip(results: list[Result], path: Path) -> None:
    """One row per (clip, vocoder) with every metric."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["clip", "vocoder", *METRICS])
        for r in results:
            for i, clip in enumerate(r.clips):
                writer.writerow([clip, r.vocoder, *(f"{r.scores[m][i]:.6g}" for m in METRICS)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", metavar="DIR_OR_MANIFEST", help="a folder of audio files or a manifest .csv")
    parser.add_argument("--split", help="manifest split to use (default: all rows)")
    parser.add_argument("--real", action="store_true", help="also use the real speech clips of voicevae.realclips")
    parser.add_argument("--limit", type=int, default=20, help="at most this many clips per source, spread evenly (default 20)")
    parser.add_argument(
        "--vocoders", default="hifigan,griffinlim", help="comma-separated: hifigan, griffinlim, fast or checkpoint paths"
    )
    parser.add_argument("--out", required=True, help="markdown report to write")
    parser.add_argument(
        "--baseline", help="also report every other vocoder's paired per-clip difference from this one (e.g. griffinlim)"
    )
    parser.add_argument("--per-clip", metavar="CSV", help="also write every clip's scores to this CSV")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--vae",
        metavar="CKPT",
        help="vocode this VAE's reconstruction of each log-mel (what conversion feeds a vocoder), scored against the original audio",
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    per_clip = Path(args.per_clip) if args.per_clip else None
    for path in (out, per_clip):
        if path is not None and path.exists() and not args.force:
            raise FileExistsError(f"{path}: exists; pass -f to overwrite")
    if not args.clips and not args.real:
        raise ValueError("give --clips DIR_OR_MANIFEST, --real, or both")
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.vocoders.split(",") if n.strip()]
    if args.baseline and args.baseline not in names:
        # Checked before hours of scoring, not after.
        raise ValueError(f"--baseline {args.baseline}: not in --vocoders ({', '.join(names)})")
    vocoders = {n: load_vocoder(n, args.device) for n in names}
    rate = next(iter(vocoders.values())).sample_rate
    clips: list[Clip] = []
    if args.clips:
        clips += clips_from_source(args.clips, rate, args.split, args.limit)
    if args.real:
        clips += real_speech_clips(rate, args.limit)

    mel_transform = None
    if args.vae:
        from .base import vae_mel_transform

        first = next(iter(vocoders.values()))
        mel_transform = vae_mel_transform(args.vae, torch.device(args.device), first.mel_config)
        # The first vocoder's analysis is now known to be the VAE's; the others must match it.
        for vocoder in vocoders.values():
            check_compatible(vocoder.mel_config, first.mel_config)

    from ..metrics import SpeakerEncoder

    results = evaluate(clips, vocoders, SpeakerEncoder(), mel_transform=mel_transform)
    table = markdown_table(results, len(clips))
    if args.baseline:
        table += "\n" + difference_table(results, args.baseline)
    if args.vae:
        table = f"Input: reconstructions by the VAE {args.vae}.\n" + table
    print(table, end="")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    if per_clip is not None:
        per_clip.parent.mkdir(parents=True, exist_ok=True)
        write_per_clip(results, per_clip)
    return 0
