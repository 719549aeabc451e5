"""Vocoder training: the real script for a step, checkpoints, resume, fine-tuning hooks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from voicevae.checkpoint import CheckpointError, load_checkpoint
from voicevae.cli import main as cli_main
from voicevae.config import (
    ConfigError,
    DiscriminatorConfig,
    VocoderConfig,
    VocoderDataConfig,
    VocosConfig,
    from_dict,
    load_yaml,
    to_dict,
)
from voicevae.training.state import read_log
from voicevae.training.vocoder import build_state, export_checkpoint, train, train_step, training_paths
from voicevae.vocoder import VocosVocoder, load_vocoder

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(manifest: Path, out_dir: Path, **overrides) -> VocoderConfig:
    """A model and discriminators small enough that a step takes milliseconds."""
    config = VocoderConfig(
        model=VocosConfig(dim=16, intermediate_dim=32, num_layers=1),
        disc=DiscriminatorConfig(periods=(2, 3), period_channels=(4, 8), resolutions=((256, 64),), resolution_channels=4),
        data=VocoderDataConfig(manifest=str(manifest), segment_frames=8, batch_size=2, valid_clips=1),
        out_dir=str(out_dir),
        steps=1,
        disc_start_step=1,
        log_every=1,
        valid_every=1,
        ckpt_every=1,
        keep_last=2,
    )
    config = dataclasses.replace(config, **overrides)
    config.validate()
    return config


def test_one_step_of_the_real_cli(tone_corpus: Path, tmp_path: Path) -> None:
    config = tiny_config(tone_corpus, tmp_path / "run", steps=2)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(to_dict(config)))
    assert cli_main(["train-vocoder", "--config", str(path), "--steps", "1", "--quiet"]) == 0
    ckpt = tmp_path / "run" / "ckpt-0000001.pt"
    data = load_checkpoint(ckpt, "vocoder")
    assert data["step"] == 1
    log = (tmp_path / "run" / "train.csv").read_text().splitlines()
    assert log[0].startswith("step,") and log[1].startswith("1,")
    vocoder = load_vocoder(ckpt)
    assert isinstance(vocoder, VocosVocoder)
    assert vocoder.vocode(torch.randn(1, 80, 10) - 5).shape == (1, 10 * 256)


@pytest.mark.parametrize("family", ["both", "periods", "resolutions"])
def test_all_named_losses_logged_after_warmup(tone_corpus: Path, tmp_path: Path, family: str) -> None:
    """The GAN runs with both discriminator families or either one alone."""
    disc = tiny_config(tone_corpus, tmp_path).disc
    if family != "both":
        disc = dataclasses.replace(disc, **{"resolutions" if family == "periods" else "periods": ()})
    train(tiny_config(tone_corpus, tmp_path, steps=2, disc_start_step=1, disc=disc), progress=False)
    first, second = read_log(tmp_path / "train.csv")
    assert first["adv/gen"] == "" and first["mel/l1"] != ""  # warm-up: reconstruction only
    for name in ("mel/l1", "stft/sc", "stft/mag", "adv/gen", "adv/disc", "fm"):
        assert float(second[name]) >= 0, name
    assert [float(r["valid/mel_l1"]) >= 0 for r in read_log(tmp_path / "valid.csv")] == [True, True]


def test_phase_and_multi_scale_mel_losses_are_logged_only_when_weighted(tone_corpus: Path, tmp_path: Path) -> None:
    lambdas = {**VocoderConfig().lambdas, "phase/ip": 1.0, "phase/gd": 1.0, "phase/iaf": 1.0, "mel/multi": 1.0}
    train(tiny_config(tone_corpus, tmp_path / "on", steps=1, lambdas=lambdas, phase_weight_power=0.5), progress=False)
    train(tiny_config(tone_corpus, tmp_path / "off", steps=1), progress=False)
    for run, present in (("on", True), ("off", False)):
        row = read_log(tmp_path / run / "train.csv")[0]
        for name in ("phase/ip", "phase/gd", "phase/iaf"):
            assert (row[name] != "") == present, (run, name)
            if present:
                assert 0 < float(row[name]) <= torch.pi
        assert (row["mel/multi"] != "") == present, run
        if present:
            assert float(row["mel/multi"]) > 0


def test_phase_losses_train_the_phase(tone_corpus: Path, tmp_path: Path) -> None:
    """Weighted alone, the phase terms pull the predicted phase towards the real one."""
    config = tiny_config(tone_corpus, tmp_path, lr=3e-3, disc_start_step=100, lambdas={"phase/gd": 1.0, "phase/iaf": 1.0})
    state = build_state(config, torch.device("cpu"), None)
    torch.manual_seed(0)
    audio = 0.3 * torch.sin(torch.linspace(0, 600, 2 * 8 * 256)).reshape(2, -1) + 0.01 * torch.randn(2, 8 * 256)
    first = train_step(state, audio)
    for _ in range(30):
        last = train_step(state, audio)
    assert set(first) == {"mel/l1", "stft/sc", "stft/mag", "phase/ip", "phase/gd", "phase/iaf"}
    # The noise bins' phase is unpredictable, so only the group delay falls far this fast.
    assert last["phase/gd"] < 0.7 * first["phase/gd"], (first, last)
    assert last["phase/gd"] + last["phase/iaf"] < first["phase/gd"] + first["phase/iaf"], (first, last)


def test_checkpoint_save_load_allclose(tone_corpus: Path, tmp_path: Path) -> None:
    ckpt = train(tiny_config(tone_corpus, tmp_path / "run"), progress=False)
    exported = export_checkpoint(ckpt, tmp_path / "small.pt")
    assert set(load_checkpoint(exported, "vocoder")) >= {"config", "model"}
    assert "opt_g" not in load_checkpoint(exported, "vocoder")
    logmel = torch.randn(1, 80, 16) - 5
    a, b = load_vocoder(ckpt).vocode(logmel), load_vocoder(exported).vocode(logmel)
    torch.testing.assert_close(a, b)
    assert a.abs().sum() > 0


def test_resume_is_identical_to_an_uninterrupted_run(tone_corpus: Path, tmp_path: Path) -> None:
    """Generator, discriminators and the moving average all continue as if never stopped."""
    straight = train(tiny_config(tone_corpus, tmp_path / "a", steps=4, disc_start_step=1, ema_decay=0.5), progress=False)
    train(tiny_config(tone_corpus, tmp_path / "b", steps=2, disc_start_step=1, ema_decay=0.5), progress=False)
    # Another seed on resume: a run that restarted from step 0 instead of the
    # checkpoint would draw other weights and data, and log steps 1 and 2 again.
    other_seed = tiny_config(tone_corpus, tmp_path / "b", steps=4, disc_start_step=1, ema_decay=0.5, seed=7)
    resumed = train(other_seed, resume=True, progress=False)
    assert [r["step"] for r in read_log(tmp_path / "b" / "train.csv")] == ["1", "2", "3", "4"]
    a, b = load_checkpoint(straight, "vocoder"), load_checkpoint(resumed, "vocoder")
    assert a["step"] == b["step"] == a["ema_updates"] == b["ema_updates"] == 4
    for part in ("model", "disc", "ema"):
        for name, value in a[part].items():
            torch.testing.assert_close(b[part][name], value, msg=f"{part}.{name}")
    # keep_last=2: older checkpoints are gone.
    assert sorted(p.name for p in (tmp_path / "a").glob("ckpt-*.pt")) == ["ckpt-0000003.pt", "ckpt-0000004.pt"]


def test_set_overrides_any_setting_of_the_yaml(tone_corpus: Path, tmp_path: Path) -> None:
    config = tiny_config(tone_corpus, tmp_path / "run", steps=1)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(to_dict(config)))
    args = ["train-vocoder", "--config", str(path), "--quiet", "--set", "data.batch_size=3", "--set", "disc.resolutions=[]"]
    assert cli_main([*args, "--set", "lr=2e-4"]) == 0  # YAML reads 2e-4 as text; it is still a number here
    saved = load_checkpoint(tmp_path / "run" / "ckpt-0000001.pt", "vocoder")["config"]
    assert saved["data"]["batch_size"] == 3 and saved["disc"]["resolutions"] == [] and saved["lr"] == 2e-4
    assert saved["disc"]["periods"] == [2, 3]  # untouched settings stay
    assert cli_main([*args[:4], "--set", "data.batch_siz=3"]) == 1  # a typo is named, not ignored
    assert cli_main([*args[:4], "--max-minutes", "0"]) == 1
    with pytest.raises(ConfigError, match=r"config.yaml.lr: expected a number, got 'fast'"):
        load_yaml(VocoderConfig, path, ["lr=fast"])
    with pytest.raises(ConfigError, match=r"config.yaml.lr: expected a number, got True"):
        load_yaml(VocoderConfig, path, ["lr=true"])


def test_max_minutes_checkpoints_and_stops_then_resume_finishes(
    tone_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import voicevae.training.state as module

    # A clock that moves 30 s each time the loop reads it: a 1-minute budget
    # is spent when the loop looks the second time, after one step.
    ticks = iter(range(0, 10_000, 30))
    monkeypatch.setattr(module.time, "monotonic", lambda: float(next(ticks)))
    config = tiny_config(tone_corpus, tmp_path / "run", steps=4, ckpt_every=3)
    stopped = train(config, progress=False, max_minutes=1.0)
    assert stopped.name == "ckpt-0000001.pt"
    assert load_checkpoint(stopped, "vocoder")["step"] == 1
    monkeypatch.undo()
    # Resumed with another seed, it still ends where an uninterrupted run does.
    finished = train(dataclasses.replace(config, seed=7), resume=True, progress=False)
    assert load_checkpoint(finished, "vocoder")["step"] == 4
    assert [r["step"] for r in read_log(tmp_path / "run" / "train.csv")] == ["1", "2", "3", "4"]
    straight = train(dataclasses.replace(config, out_dir=str(tmp_path / "straight")), progress=False)
    a, b = load_checkpoint(straight, "vocoder")["model"], load_checkpoint(finished, "vocoder")["model"]
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, msg=name)


def test_moving_average_is_what_loads_and_exports(tone_corpus: Path, tmp_path: Path) -> None:
    straight = train(tiny_config(tone_corpus, tmp_path / "a", steps=4, ema_decay=0.5), progress=False)
    a = load_checkpoint(straight, "vocoder")
    # The average lags the trained weights, and it is what load_vocoder and export give.
    assert any(not torch.equal(a["ema"][n], a["model"][n]) for n in a["model"])
    logmel = torch.randn(1, 80, 16) - 5
    averaged = VocosVocoder(load_vocoder(straight).mel_config, VocosConfig(dim=16, intermediate_dim=32, num_layers=1))
    averaged.load_state_dict(a["ema"])
    expected = averaged.eval().vocode(logmel)
    torch.testing.assert_close(load_vocoder(straight).vocode(logmel), expected)
    torch.testing.assert_close(load_vocoder(export_checkpoint(straight, tmp_path / "x.pt")).vocode(logmel), expected)
    # A run without an average cannot be resumed as one with it.
    plain = train(tiny_config(tone_corpus, tmp_path / "c", steps=1), progress=False)
    with pytest.raises(CheckpointError, match=f"{plain.name} has no moving average"):
        train(tiny_config(tone_corpus, tmp_path / "c", steps=2, ema_decay=0.5), resume=True, progress=False)


def test_resume_without_checkpoint_is_an_error(tone_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"--resume given but there is no ckpt-\*.pt checkpoint"):
        train(tiny_config(tone_corpus, tmp_path), resume=True, progress=False)


def test_init_from_copies_weights(tone_corpus: Path, tmp_path: Path) -> None:
    first = train(tiny_config(tone_corpus, tmp_path / "a"), progress=False)
    second = train(tiny_config(tone_corpus, tmp_path / "b", steps=1, lr=0.0), init_from=first, progress=False)
    a, b = load_checkpoint(first, "vocoder")["model"], load_checkpoint(second, "vocoder")["model"]
    for name, value in a.items():
        torch.testing.assert_close(b[name], value)


def test_mel_transform_feeds_the_generator(tone_corpus: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, ...]] = []

    def transform(logmel: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(logmel.shape))
        return logmel + 0.1

    train(tiny_config(tone_corpus, tmp_path), mel_transform=transform, progress=False)
    assert seen[0] == (2, 80, 8)  # the training batch; later calls are validation clips


def test_vae_checkpoint_errors_name_the_file(tone_corpus: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_vae.pt"
    with pytest.raises(ValueError, match="no_vae.pt"):
        train(tiny_config(tone_corpus, tmp_path, vae_checkpoint=str(missing)), progress=False)


def test_config_rejects_unknown_loss_names_and_keys() -> None:
    with pytest.raises(ConfigError, match="lambdas: unknown loss name.*mel/l2"):
        from_dict(VocoderConfig, {"lambdas": {"mel/l2": 1.0}})
    with pytest.raises(ConfigError, match="ema_decay: must be in"):
        from_dict(VocoderConfig, {"ema_decay": 1.0}).validate()
    with pytest.raises(ConfigError, match="phase_weight_power: must be >= 0"):
        from_dict(VocoderConfig, {"phase_weight_power": -1.0}).validate()
    with pytest.raises(ConfigError, match="config.disc: periods and resolutions are both empty"):
        from_dict(VocoderConfig, {"disc": {"periods": [], "resolutions": []}})
    with pytest.raises(ConfigError, match=r"config.mel_scales\[1\]: need 0 < hop_length"):
        from_dict(VocoderConfig, {"mel_scales": [[256, 64, 20], [512, 0, 40]]})
    with pytest.raises(ConfigError, match=r"config.mel_scales\[0\]: need \[n_fft, hop, n_mels\]"):
        from_dict(VocoderConfig, {"mel_scales": [[256, 64]]})
    with pytest.raises(ConfigError, match="unknown setting.*dimm"):
        from_dict(VocoderConfig, {"model": {"dimm": 3}})
    round_trip = from_dict(VocoderConfig, to_dict(VocoderConfig()))
    assert round_trip == VocoderConfig()


def test_lr_schedule_is_a_function_of_the_step() -> None:
    config = VocoderConfig(lr=1e-3, lr_decay=0.5)
    assert [config.lr_at(s) for s in range(3)] == [1e-3, 5e-4, 2.5e-4]


def test_vocoder_recipes_load() -> None:
    """The recipe's stages parse; stage 2 fine-tunes with the period discriminators from its first step."""
    recipes = Path(__file__).resolve().parents[1] / "recipes" / "vocoder"
    configs = {p.name: from_dict(VocoderConfig, yaml.safe_load(p.read_text()), str(p)) for p in recipes.glob("*.yaml")}
    assert set(configs) == {"config.yaml", "more_talkers.yaml", "gan_finetune.yaml"}
    stage1, stage2, stage3 = configs["config.yaml"], configs["gan_finetune.yaml"], configs["more_talkers.yaml"]
    assert stage1.disc_start_step >= stage1.steps and stage3.disc_start_step >= stage3.steps  # no GAN on a CPU
    assert stage2.disc_start_step == 0 and stage2.disc.resolutions == () and stage2.disc.periods
    # Stage 3 trains like stage 1 with more talkers, a lower rate and fewer steps: nothing else differs.
    assert stage3.data.extra_manifests and stage3.lr < stage1.lr
    same = dataclasses.replace(
        stage3,
        data=dataclasses.replace(stage3.data, extra_manifests=()),
        lr=stage1.lr,
        steps=stage1.steps,
        disc_start_step=stage1.disc_start_step,
        out_dir=stage1.out_dir,
    )
    assert same == stage1
    for later in (stage2, stage3):  # --init-from needs the same model
        assert later.model == stage1.model and later.mel == stage1.mel


def test_extra_manifests_join_the_training_clips(tone_corpus: Path, tmp_path: Path) -> None:
    data = VocoderDataConfig(manifest=str(tone_corpus))
    alone = training_paths(data)
    # A list, as YAML gives it; the train split of each extra manifest is added.
    data = from_dict(VocoderDataConfig, {"manifest": str(tone_corpus), "extra_manifests": [str(tone_corpus)]})
    assert data.extra_manifests == (str(tone_corpus),)
    assert training_paths(data) == alone + alone
    missing = VocoderDataConfig(manifest=str(tone_corpus), extra_manifests=(str(tone_corpus), str(tmp_path / "nope.csv")))
    with pytest.raises(ConfigError, match=r"data.extra_manifests\[1\]: .*nope.csv"):
        training_paths(missing)
