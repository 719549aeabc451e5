"""Does batch size or device change the audio `convert_files` writes?

    .venv/bin/python benchmarks/convert_consistency.py [--devices cpu,cuda] [--tf32 off,on] [--vocoder fast]

Converts the default model's example clips, cut to different lengths so a
batch holds padding, to one target voice with each device, batch size and
TF32 setting, and prints the largest sample difference between the runs
(the files are 16-bit, so 3e-5 is rounding). TF32 (cuDNN convolutions and
matrix products on CUDA) trades float32 precision for speed; PyTorch allows it
in convolutions by default.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import voicevae
from voicevae.api import DEFAULT_MODEL


def example_inputs(folder: Path) -> list[Path]:
    """The shipped example clips, each cut to a different share (40-100%) of its length."""
    sources = sorted((DEFAULT_MODEL.parent / "examples").glob("*.wav"))
    paths = []
    for i, src in enumerate(sources):
        wav, rate = sf.read(src)
        keep = int(len(wav) * (0.4 + 0.6 * i / max(len(sources) - 1, 1)))
        paths.append(folder / src.name)
        sf.write(paths[-1], wav[:keep], rate)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tf32", default="off,on", help="CUDA TF32 settings to try: off, on or both")
    parser.add_argument("--vocoder", default="fast")
    parser.add_argument("--target", default="flite_slt")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="convert_consistency_"))
    (work / "in").mkdir()
    paths = example_inputs(work / "in")
    runs: dict[str, dict[str, np.ndarray]] = {}
    for device in args.devices.split(","):
        tf32_settings = args.tf32.split(",") if device.startswith("cuda") else ["off"]
        for tf32, batch in itertools.product(tf32_settings, (1, 16)):
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32 == "on"
            vc = voicevae.load(vocoder=args.vocoder, device=device)
            name = f"{device} batch {batch} tf32 {tf32}"
            out = work / name.replace(" ", "_")
            report = vc.convert_files(paths, out, target=args.target, progress=False, batch_size=batch)
            if report.failed:
                raise SystemExit(f"{name}: {report.failed}")
            runs[name] = {p.name: sf.read(p)[0] for p in sorted(out.glob("*.wav"))}
    reference = next(iter(runs))
    peak = max(np.abs(w).max() for w in runs[reference].values())
    print(f"{len(paths)} clips, vocoder {args.vocoder}, peak sample {peak:.2f}; max |difference| from {reference}:")
    for name, audio in runs.items():
        if name != reference:
            diff = max(np.abs(audio[k] - runs[reference][k]).max() for k in audio)
            print(f"  {name:32s} {diff:.1e}")


if __name__ == "__main__":
    main()
