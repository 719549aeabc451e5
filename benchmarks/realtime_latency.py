"""Live conversion: per-block compute, latency and closeness to offline; exported graphs' speed.

    python benchmarks/realtime_latency.py [--threads 2] [--blocks-ms 20,35,50,100,200] [--no-judge] [--no-export] [--detail D]

For each block length, the shipped examples (all but the target's own) are
fed to `vc.stream` block by block, as an audio callback would:
- compute: wall time of each `process` call (median and 95th percentile);
- real-time factor: median compute / block length (goal <= 0.5);
- algorithmic latency: block + the stream's lookahead delay (`latency_ms`);
- end to end: algorithmic latency + the 95th-percentile compute (goal <= 100 ms);
- log-mel distance of the streamed output from offline `vc.convert` (nats,
  top 70 dB), and with the judge (Resemblyzer) the similarity of each output
  to the target's example clip, streamed against offline.
With --detail D both the streams and offline conversion keep D of the
source's detail; the stream estimates the speaker's own latent as it goes
(a second decode per block).
Then the exported converter (voicevae/export.py) on a 10 s clip: eager
PyTorch, TorchScript and onnxruntime, best of 5, on the same threads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import voicevae
from voicevae.api import ASSETS
from voicevae.export import ExportableConverter, export
from voicevae.features import MelFrontend
from voicevae.metrics import mel_l1
from voicevae.pitch import intonation

EXAMPLES = ASSETS / "default" / "examples"


def stream_clip(
    vc, target: str, wav: torch.Tensor, block_ms: float, detail: float = 0.0
) -> tuple[torch.Tensor, list[float], object]:
    stream = vc.stream(target, block_ms=block_ms, detail=detail)
    outs, times = [], []
    for i in range(0, wav.numel() - stream.block + 1, stream.block):
        t = time.perf_counter()
        outs.append(stream.process(wav[i : i + stream.block]))
        times.append(time.perf_counter() - t)
    outs.append(stream.flush())
    return torch.cat(outs)[stream.delay :], times, stream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--target", default="flite_slt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks-ms", default="20,35,50,100,200")
    ap.add_argument("--no-judge", action="store_true", help="skip the Resemblyzer similarities")
    ap.add_argument("--no-export", action="store_true", help="skip the exported-graph timings")
    ap.add_argument("--detail", type=float, default=0.0, help="the source detail of streams and offline conversion")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    vc = voicevae.load(args.model, vocoder="fast", device="cpu")
    sources = [p for p in sorted(EXAMPLES.glob("*.wav")) if p.stem != args.target]
    wavs = [vc.load_audio(p) for p in sources]
    offline = [vc.convert(w, args.target, detail=args.detail).cpu() for w in wavs]
    judge = None
    if not args.no_judge:
        from voicevae.metrics import SpeakerEncoder

        judge = SpeakerEncoder()
        ref = judge.embed(vc.load_audio(EXAMPLES / f"{args.target}.wav"), vc.sample_rate)
        offline_sim = statistics.mean(float(judge.embed(o, vc.sample_rate) @ ref) for o in offline)
    print(
        f"threads: {args.threads}; {len(wavs)} clips, {sum(w.numel() for w in wavs) / vc.sample_rate:.1f} s;"
        f" target {args.target}; detail {args.detail:g}"
    )
    print(
        "| block (ms) | compute median / p95 (ms) | real-time factor | algorithmic latency (ms) "
        "| end to end (ms) | log-mel distance from offline | similarity to target, stream / offline |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    stream_clip(vc, args.target, wavs[0], 35.0, args.detail)  # warm-up: the first runs of each kernel are slow
    for block_ms in (float(b) for b in args.blocks_ms.split(",")):
        times, dists, sims = [], [], []
        for wav, off in zip(wavs, offline):
            out, t, stream = stream_clip(vc, args.target, wav, block_ms, args.detail)
            times += t[2:]  # the first calls run on a short history
            dists.append(mel_l1(off, out, vc.frontend, dynamic_range=8.0))
            if judge is not None:
                sims.append(float(judge.embed(out[: off.numel()], vc.sample_rate) @ ref))
        median, p95 = 1000 * statistics.median(times), 1000 * float(np.percentile(times, 95))
        sim = f"{statistics.mean(sims):.3f} / {offline_sim:.3f}" if judge is not None else "-"
        print(
            f"| {stream.block_ms:.1f} | {median:.1f} / {p95:.1f} | {median / stream.block_ms:.2f} | {stream.latency_ms:.1f} "
            f"| {stream.latency_ms + p95:.1f} | {statistics.mean(dists):.3f} | {sim} |"
        )
    if not args.no_export:
        export_speed(vc, args.target, args.threads, args.detail)


def best_of(fn, n: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def export_speed(vc, target: str, threads: int, detail: float = 0.0) -> None:
    import onnxruntime

    wav = torch.cat([vc.load_audio(p) for p in sorted(EXAMPLES.glob("*.wav"))])[: 10 * vc.sample_rate]
    audio, z, strength = wav[None], vc.target_vector(target)[None], torch.ones(1)
    inputs: tuple[torch.Tensor, ...] = (audio, z, strength)
    if vc.model.config.pitch_input:
        # The graph takes the contour as an input (export.py); the tracker runs beside it.
        t = time.perf_counter()
        hop = vc.model.mel_config.hop_length
        pitch = intonation(wav, vc.sample_rate, wav.numel() // hop, hop).unsqueeze(0)
        print(f"\nF0 tracking for the graph's pitch input: {time.perf_counter() - t:.3f} s (not in the timings below)")
        inputs = (*inputs, pitch)
    net = ExportableConverter(vc.model, vc.vocoder, MelFrontend(vc.model.mel_config), detail, vc.postfilter).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ts_path, _ = export(vc, Path(tmp) / "v.ts", "torchscript", detail=detail)
        onnx_path, _ = export(vc, Path(tmp) / "v.onnx", "onnx", detail=detail)
        scripted = torch.jit.load(str(ts_path))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(str(onnx_path), options)
        feeds = {name: x.numpy() for name, x in zip(("audio", "target", "strength", "pitch"), inputs)}
        seconds = wav.numel() / vc.sample_rate
        print(f"\nexported converter on a {seconds:.0f} s clip (best of 5):")
        print("| runtime | wall (s) | x real time |")
        print("| --- | --- | --- |")
        with torch.inference_mode():
            for name, fn in (
                ("PyTorch (eager)", lambda: net(*inputs)),
                ("TorchScript", lambda: scripted(*inputs)),
                ("onnxruntime", lambda: session.run(None, feeds)),
            ):
                wall = best_of(fn)
                print(f"| {name} | {wall:.3f} | {seconds / wall:.1f} |")


if __name__ == "__main__":
    main()
