"""The GPU recipes parse and run end to end (scan, then train) on tiny corpora in each corpus's layout."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicevae.cli import main
from voicevae.model import VAE
from voicevae.training.vae import load_config

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
# The recipe's settings, with the model and run shrunk to a test's size.
TINY = [
    "model.channels=16",
    "model.n_blocks=1",
    "data.segment_frames=32",
    "data.speakers_per_batch=2",
    "steps=2",
    "log_every=1",
    "valid_every=2",
    "ckpt_every=2",
    "kl_warmup_steps=2",
]


def _voice(path: Path, rate: int, f0: float, seed: int) -> None:
    t = np.arange(int(0.6 * rate)) / rate
    wav = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) + 0.01 * np.random.default_rng(seed).standard_normal(
        t.size
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.2 * wav / np.abs(wav).max()).astype(np.float32), rate)


def _vctk(root: Path) -> None:
    info = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS"]
    for i, spk in enumerate(("p225", "p226", "p227", "p228")):
        info.append(f"{spk}  23  {'F' if i % 2 else 'M'}    English    Surrey")
        for n in range(1, 5):
            _voice(root / "wav48_silence_trimmed" / spk / f"{spk}_{n:03d}_mic2.flac", 48000, 100 + 40 * i, n)
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{spk}_{n:03d}.txt").write_text(f"Please call Stella {n}.\n")
    (root / "speaker-info.txt").write_text("\n".join(info) + "\n")


def _libritts(root: Path) -> None:
    lines = [";READER|GENDER|SUBSET|NAME"]
    for i, spk in enumerate(("19", "26", "27", "32")):
        subset = "dev-clean" if i == 3 else "train-clean-100"
        lines.append(f"{spk}   |{'F' if i % 2 else 'M'}|{subset}|Reader {spk}")
        for n in range(4):
            stem = f"{spk}_198_{n:06d}_000000"
            _voice(root / subset / spk / "198" / f"{stem}.wav", 24000, 100 + 40 * i, n)
            (root / subset / spk / "198" / f"{stem}.normalized.txt").write_text(f"Sentence {n}.")
    (root / "SPEAKERS.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("recipe", "layout", "make", "scan_args"),
    [("vctk", "vctk", _vctk, ["--mic", "mic2"]), ("libritts", "libritts", _libritts, [])],
)
def test_recipe_scans_and_trains_end_to_end(tmp_path, recipe, layout, make, scan_args):
    config = RECIPES / recipe / "config.yaml"
    load_config(config)  # the recipe as shipped is a valid config
    root = tmp_path / "corpus"
    make(root)
    manifest = tmp_path / "manifest.csv"
    assert main(["scan", str(root), "--layout", layout, "-o", str(manifest), "--heldout-speakers", "1", *scan_args]) == 0
    out = tmp_path / "run"
    sets = [*TINY, f"data.manifest={manifest}", f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={out}"]
    argv = ["train", "--config", str(config), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    model = VAE.load(out / "model.pt")
    assert model.config.n_blocks == 1 and (out / "ckpt-0000002.pt").is_file()
    header = (out / "train.csv").read_text().splitlines()[0]
    assert "cycle/content" in header
