"""The real training entry point: a short run, exact resume, refusal to clobber, DDP on CPU."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import write_train_config as write_config

from voicevae.cli import main
from voicevae.config import ConfigError
from voicevae.model import VAE
from voicevae.training.state import read_log
from voicevae.training.vae import load_config, train


def test_cli_train_one_step_writes_model_and_log(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=1)
    assert main(["train", "--config", str(config), "--quiet"]) == 0
    model = VAE.load(tmp_path / "run" / "model.pt")
    assert model.config.channels == 16
    log = (tmp_path / "run" / "train.csv").read_text().splitlines()
    assert log[0].startswith("step,") and "rec/nll" in log[0] and len(log) >= 2
    assert "valid/log_px" in (tmp_path / "run" / "valid.csv").read_text()
    # A second run into the same folder without --resume is refused, nothing is overwritten.
    before = (tmp_path / "run" / "model.pt").read_bytes()
    assert main(["train", "--config", str(config), "--quiet"]) == 1
    assert (tmp_path / "run" / "model.pt").read_bytes() == before


def test_resume_continues_identically(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=4, ckpt_every=2)
    train(load_config(config, [f"out_dir={tmp_path / 'a'}"]), progress=False)
    # Run b is "interrupted" after its step-2 checkpoint: later files are lost.
    train(load_config(config, [f"out_dir={tmp_path / 'b'}"]), progress=False)
    (tmp_path / "b" / "ckpt-0000004.pt").unlink()
    (tmp_path / "b" / "model.pt").unlink()
    # The newest surviving training checkpoint is itself a loadable model.
    assert VAE.load(tmp_path / "b" / "ckpt-0000002.pt").config.channels == 16
    logged = len(read_log(tmp_path / "b" / "train.csv"))
    # Another seed on resume: a run that restarted from step 0 instead of the
    # checkpoint would draw other weights and batches, and log from step 1.
    train(load_config(config, [f"out_dir={tmp_path / 'b'}", "seed=7"]), resume=True, progress=False)
    assert [r["step"] for r in read_log(tmp_path / "b" / "train.csv")[logged:]] == ["3", "4"]
    # Same batches, same noise, same optimiser state: the same weights.
    a = VAE.load(tmp_path / "a" / "model.pt").state_dict()
    b = VAE.load(tmp_path / "b" / "model.pt").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_init_from_a_model_file_fine_tunes_its_weights_from_step_0(tmp_path, tone_corpus):
    from voicevae.config import VAEConfig

    torch.manual_seed(3)
    start = VAE(VAEConfig(channels=8, n_blocks=1, content_dim=2, speaker_dim=4))
    start.set_normalization(torch.full((80,), -4.0), torch.full((80,), 2.0))  # not the corpus's statistics
    start.save(tmp_path / "start.pt")
    # The YAML's architecture (16 channels) gives way to the model file's; at lr 0 nothing moves,
    # so the fine-tuned model is the file's weights, its normalisation included.
    lambdas = {"rec/nll": 1.0, "kl/content": 1.0, "kl/speaker": 1.0, "cycle/voices": 1.0}
    config = write_config(tmp_path, tone_corpus, steps=2, lr=0.0, lr_min=0.0, kl_warmup_steps=0, lambdas=lambdas)
    assert main(["train", "--config", str(config), "--quiet", "--init-from", str(tmp_path / "start.pt")]) == 0
    tuned = VAE.load(tmp_path / "run" / "model.pt")
    assert tuned.config.channels == 8
    for k, v in start.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[k], v, rtol=0, atol=0, msg=k)
    log = read_log(tmp_path / "run" / "train.csv")
    assert [r["step"] for r in log] == ["1", "2"] and float(log[0]["cycle/voices"]) > 0


def test_max_minutes_stops_with_a_checkpoint_and_resume_matches(tmp_path, tone_corpus, monkeypatch):
    import voicevae.training.state as module

    config = write_config(tmp_path, tone_corpus, steps=4, ckpt_every=3)
    train(load_config(config, [f"out_dir={tmp_path / 'a'}"]), progress=False)
    # A clock that moves 30 s per reading: a 1-minute budget is spent at the
    # loop's second look, after one step.
    ticks = iter(range(0, 10_000, 30))
    monkeypatch.setattr(module.time, "monotonic", lambda: float(next(ticks)))
    train(load_config(config, [f"out_dir={tmp_path / 'b'}"]), progress=False, max_minutes=1.0)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "b").glob("ckpt-*.pt")) == ["ckpt-0000001.pt"]
    assert VAE.load(tmp_path / "b" / "model.pt").config.channels == 16  # the model as it stands
    train(load_config(config, [f"out_dir={tmp_path / 'b'}", "seed=7"]), resume=True, progress=False)
    assert [r["step"] for r in read_log(tmp_path / "b" / "train.csv")] == ["1", "2", "3", "4"]
    a = VAE.load(tmp_path / "a" / "model.pt").state_dict()
    b = VAE.load(tmp_path / "b" / "model.pt").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert main(["train", "--config", str(config), "--max-minutes", "-1", "--quiet"]) == 1


def test_unknown_keys_and_bad_overrides_are_named(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus)
    with pytest.raises(ConfigError, match=r"config.yaml.*unknown setting.*lerning_rate"):
        load_config(config, ["lerning_rate=3"])
    with pytest.raises(ConfigError, match=r"model.*unknown setting.*width"):
        load_config(config, ["model.width=3"])


def test_too_short_clip_is_rejected_with_its_name(tmp_path, tone_corpus):
    import numpy as np
    import soundfile as sf

    manifest = tmp_path / "short.csv"
    sf.write(tmp_path / "tiny.wav", np.random.default_rng(0).standard_normal(600).astype("float32") * 0.1, 22050)
    manifest.write_text("path,speaker,text,split\ntiny.wav,a,x,train\n")
    cfg = load_config(write_config(tmp_path, manifest))
    with pytest.raises(ValueError, match=r"tiny.wav: .* shorter than data.min_frames"):
        train(cfg, progress=False)


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path, tone_corpus):
    # --max-minutes makes rank 0 broadcast its stop decision every step.
    config = write_config(tmp_path, tone_corpus, steps=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29517",
            "-m",
            "voicevae.cli",
            "train",
            "--config",
            str(config),
            "--quiet",
            "--max-minutes",
            "60",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "run" / "ckpt-0000002.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["ranks"]) == 2
    # Each rank drew its own batches.
    assert not torch.equal(ckpt["ranks"][0]["batches"]["generator"], ckpt["ranks"][1]["batches"]["generator"])


def test_categorical_content_trains_with_the_score_function(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=2, n_samples=2)
    cfg = load_config(config, ["model.content_latent=categorical", "model.content_codes=8"])
    train(cfg, progress=False)
    header, *rows = (tmp_path / "run" / "train.csv").read_text().splitlines()
    assert "sf/reinforce" in header
    assert VAE.load(tmp_path / "run" / "model.pt").config.content_latent == "categorical"


def test_config_holes_are_named(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus)
    # A misspelt loss weight would otherwise train without the term it meant.
    with pytest.raises(ConfigError, match=r"config.yaml.lambdas: unknown loss name.*kl/contnet"):
        load_config(config, ["lambdas={rec/nll: 1.0, kl/contnet: 3.0}"])
    with pytest.raises(ConfigError, match=r"config.yaml.steps: must be >= 1, got -5"):
        load_config(config, ["steps=-5"])
    with pytest.raises(ConfigError, match=r"config.yaml.model: expected a mapping of settings, got 5"):
        load_config(config, ["model=5"])
    with pytest.raises(ConfigError, match=r"lambdas.sf/reinforce: a categorical content latent"):
        load_config(config, ["model.content_latent=categorical", "lambdas={rec/nll: 1.0}"])
    assert main(["train", "--config", str(config), "--quiet", "--set", "steps=-5"]) == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_killed_checkpoint_write_is_cleaned_up(tmp_path, tone_corpus):
    """kill -9 during save_checkpoint leaves its temporary file; the next start of the run removes it."""
    config = write_config(tmp_path, tone_corpus, steps=2)
    train(load_config(config), progress=False)
    stale = tmp_path / "run" / ".ckpt-0000004.pt.k9x2ab.tmp"
    stale.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / "run" / "notes.tmp"  # not ours: left alone
    unrelated.write_text("mine")
    train(load_config(config, ["steps=3"]), resume=True, progress=False)
    assert not stale.exists() and unrelated.read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "run").glob("ckpt-*.pt")) == ["ckpt-0000002.pt", "ckpt-0000003.pt"]


def test_a_fresh_run_refuses_a_folder_with_logs_of_another(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.csv").write_text("step,rec/nll\n1,3.0\n")  # a run killed before its first checkpoint
    with pytest.raises(FileExistsError, match=r"holds the logs of an earlier run \(train.csv\)"):
        train(load_config(config), progress=False)
    assert (tmp_path / "run" / "train.csv").read_text() == "step,rec/nll\n1,3.0\n"
