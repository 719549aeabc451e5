"""Shared fixtures: a tiny multi-speaker corpus made of synthetic signals."""

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml


def make_tone_corpus(root: Path, speakers: int = 3, clips: int = 3, seconds: float = 0.8) -> Path:
    """Write `speakers` x `clips` harmonic 'voices' (one pitch per speaker) and a manifest.

    The last clip of each speaker is in the valid split. Returns the manifest path.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rate = 22050
    t = np.arange(int(seconds * rate)) / rate
    rows = []
    for s in range(speakers):
        f0 = 110 * (1.5**s)
        for c in range(clips):
            vib = 1 + 0.02 * np.sin(2 * np.pi * (3 + c) * t)
            wav = sum(np.sin(2 * np.pi * k * f0 * vib * t) / k for k in range(1, 6))
            wav = 0.2 * wav / np.abs(wav).max() + 0.005 * rng.standard_normal(t.size)
            rel = Path(f"spk{s}") / f"clip{c}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, wav.astype(np.float32), rate)
            rows.append(
                {
                    "path": str(rel),
                    "speaker": f"spk{s}",
                    "text": f"clip {c}",
                    "split": "valid" if c == clips - 1 else "train",
                    "gender": "f" if s % 2 else "m",
                }
            )
    manifest = root / "manifest.csv"
    write_manifest(manifest, rows)
    return manifest


def write_manifest(manifest: Path, rows: list[dict]) -> None:
    """Write manifest rows (dicts with the same keys) as CSV, replacing the file."""
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def edit_manifest(manifest: Path, edit) -> Path:
    """Rewrite a manifest with `edit(row)` applied to each row (a dict, changed in place); returns it."""
    rows = list(csv.DictReader(manifest.open()))
    for r in rows:
        edit(r)
    write_manifest(manifest, rows)
    return manifest


def write_train_config(tmp_path: Path, manifest: Path, **top) -> Path:
    """A training YAML for a tiny model on `manifest`, written in tmp_path; `top` overrides top-level settings."""
    cfg = {
        "model": {"channels": 16, "n_blocks": 1, "content_dim": 2, "speaker_dim": 4},
        "data": {
            "manifest": str(manifest),
            "cache_dir": str(tmp_path / "cache"),
            "segment_frames": 32,
            "speakers_per_batch": 2,
            "clips_per_speaker": 2,
        },
        "out_dir": str(tmp_path / "run"),
        "steps": 2,
        "log_every": 1,
        "valid_every": 2,
        "ckpt_every": 2,
        "kl_warmup_steps": 2,
        **top,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def interrupted_and_straight(tmp_path: Path, config: Path, overrides: list[str]) -> tuple[dict, dict]:
    """Step-4 checkpoints of a straight 4-step run (a) and one interrupted after its step-2 checkpoint and resumed (b)."""
    from voicevae.training.vae import load_config, train

    train(load_config(config, [f"out_dir={tmp_path / 'a'}", *overrides]), progress=False)
    train(load_config(config, [f"out_dir={tmp_path / 'b'}", *overrides]), progress=False)
    (tmp_path / "b" / "ckpt-0000004.pt").unlink()
    (tmp_path / "b" / "model.pt").unlink()
    train(load_config(config, [f"out_dir={tmp_path / 'b'}", *overrides]), resume=True, progress=False)
    a, b = (torch.load(tmp_path / run / "ckpt-0000004.pt", weights_only=False) for run in ("a", "b"))
    return a, b


def cli_option_changes_the_output(args: list[str], option: str, tmp_path: Path) -> None:
    """`voicevae convert ARGS` with OPTION 1 writes other samples than without it; OPTION 2 (out of
    range) is refused and writes nothing."""
    from voicevae.cli import main

    assert main([*args, "-o", str(tmp_path / "plain")]) == 0
    assert main([*args, "-o", str(tmp_path / "with"), option, "1"]) == 0
    a, b = (sf.read(tmp_path / d / "src.wav")[0] for d in ("plain", "with"))
    assert a.shape == b.shape and not np.allclose(a, b)
    assert main([*args, "-o", str(tmp_path / "bad"), option, "2"]) == 1
    assert not (tmp_path / "bad" / "src.wav").exists()


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory) -> Path:
    return make_tone_corpus(tmp_path_factory.mktemp("tones"))


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: the test machine is shared and more threads only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tone_corpus) -> Path:
    """A tiny (untrained) model with its vector file, saved like a real one (one per test module)."""
    from voicevae.config import VAEConfig
    from voicevae.corpora import read_manifest
    from voicevae.model import VAE
    from voicevae.vectors import compute_vectors

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("model")
    VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4)).save(out / "model.pt")
    compute_vectors(VAE.load(out / "model.pt"), read_manifest(tone_corpus), is_samples=2, progress=False).save(out / "vectors.pt")
    return out


@pytest.fixture(scope="module")
def pitch_model_dir(tmp_path_factory, tone_corpus):
    """A tiny (untrained) model with a pitch input and its vector file, F0 statistics included."""
    from voicevae.config import VAEConfig
    from voicevae.corpora import read_manifest
    from voicevae.model import VAE
    from voicevae.vectors import compute_vectors

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("pitch_model")
    VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4, pitch_input=True)).save(out / "model.pt")
    vectors = compute_vectors(VAE.load(out / "model.pt"), read_manifest(tone_corpus), is_samples=2, f0_clips=2, progress=False)
    vectors.save(out / "vectors.pt")
    return out
