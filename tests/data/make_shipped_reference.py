"""Write shipped_reference.npz: the shipped model's output on a fixed clip, for tests/test_default_model.py.

    python tests/data/make_shipped_reference.py

Run it only when the shipped model (voicevae/assets/) changes on purpose: the
test exists to catch a refactor that changes what the shipped model outputs.
The file records the model's and vocoder's sha256, so a stale reference is
named as such rather than reported as a changed output.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

import voicevae
from voicevae.api import DEFAULT_MODEL
from voicevae.audio import load_audio
from voicevae.vocoder import FAST_ASSET

HERE = Path(__file__).resolve().parent
SOURCE = DEFAULT_MODEL.parent / "examples" / "flite_awb.wav"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_outputs() -> dict[str, np.ndarray]:
    """Conversion to flite_slt and resynthesis of the first 1.5 s of an example, fast vocoder (deterministic)."""
    vc = voicevae.load(vocoder="fast", device="cpu")
    src = load_audio(SOURCE, vc.sample_rate)[: int(1.5 * vc.sample_rate)]
    with torch.inference_mode():
        return {"converted": vc.convert(src, target="flite_slt").numpy(), "resynthesized": vc.resynthesize(src).numpy()}


def assets_digest() -> str:
    return " ".join(sha256(p) for p in (DEFAULT_MODEL, DEFAULT_MODEL.parent / "vectors.pt", FAST_ASSET))


if __name__ == "__main__":
    np.savez(HERE / "shipped_reference.npz", digest=np.array(assets_digest()), **shipped_outputs())
    print(f"wrote {HERE / 'shipped_reference.npz'}")
