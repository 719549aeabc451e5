"""The decoder's adversarial stage: what it trains, what it freezes, exact resume, and its refusals."""

import copy

import pytest
import torch
from conftest import interrupted_and_straight
from conftest import write_train_config as write_config

from voicevae.cli import main
from voicevae.config import AdversarialConfig, ConfigError, VAEConfig
from voicevae.model import VAE, band_masked
from voicevae.training.adversarial import Critic
from voicevae.training.elbo import elbo_terms
from voicevae.training.state import read_log
from voicevae.training.vae import load_config, train

# The tiny config has no lambdas section, so an override names every weight.
STAGE = [
    "lambdas.rec/nll=1.0",
    "lambdas.kl/content=1.0",
    "lambdas.kl/speaker=1.0",
    "lambdas.adv/gen=1.0",
    "lambdas.fm=2.0",
    "lambdas.adv/disc=1.0",
]


def _parts(state: dict, prefix: str) -> dict:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def test_the_stage_trains_the_decoder_and_leaves_the_encoders(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=2, ckpt_every=2)
    run = tmp_path / "run"
    train(load_config(config), progress=False)
    before = torch.load(run / "ckpt-0000002.pt", weights_only=False)["model"]
    plain = tmp_path / "plain"
    plain.mkdir()
    for p in run.glob("*.*"):
        (plain / p.name).write_bytes(p.read_bytes())
    # The second stage continues the finished run: 2 more steps with the discriminator.
    train(load_config(config, ["steps=4", "adversarial.start_step=2", *STAGE]), resume=True, progress=False)
    after = VAE.load(run / "model.pt").state_dict()
    for prefix in ("speaker_encoder.", "content_encoder."):
        for k, v in _parts(before, prefix).items():
            torch.testing.assert_close(after[k], v, rtol=0, atol=0, msg=k)
    # The same 2 steps without the stage draw the same batches and noise, so
    # any difference in the decoder is the discriminator's doing.
    train(load_config(config, [f"out_dir={plain}", "steps=4", *STAGE[:3]]), resume=True, progress=False)
    without = VAE.load(plain / "model.pt").state_dict()
    moved = [k for k in _parts(before, "decoder.") if not torch.equal(after[k], without[k])]
    assert moved, "the adversarial terms did not change what the decoder learnt"
    rows = read_log(run / "train.csv")
    assert [r["adv/disc"] == "" for r in rows] == [True, True, False, False]
    assert all(float(r["fm"]) > 0 and float(r["adv/gen"]) > 0 for r in rows[2:])
    assert "critic" in torch.load(run / "ckpt-0000004.pt", weights_only=False)
    # Going on without the stage's settings would quietly end it: refused.
    with pytest.raises(ValueError, match="is in the adversarial stage, but this config has no adversarial.start_step"):
        train(load_config(config, ["steps=6", *STAGE[:3]]), resume=True, progress=False)


def test_without_the_freeze_the_encoders_move(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=2, ckpt_every=2)
    run = tmp_path / "run"
    train(load_config(config), progress=False)
    before = torch.load(run / "ckpt-0000002.pt", weights_only=False)["model"]
    overrides = ["steps=3", "adversarial.start_step=2", "adversarial.freeze_encoders=false", *STAGE]
    train(load_config(config, overrides), resume=True, progress=False)
    after = VAE.load(run / "model.pt").state_dict()
    assert any(not torch.equal(after[k], v) for k, v in _parts(before, "content_encoder.").items())


def test_resume_inside_the_stage_is_exact(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=4, ckpt_every=2)
    stage = ["adversarial.start_step=1", *STAGE]
    a, b = interrupted_and_straight(tmp_path, config, stage)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    # The discriminator resumed too: a fresh one would have other weights.
    for k in a["critic"]["net"]:
        torch.testing.assert_close(a["critic"]["net"][k], b["critic"]["net"][k], rtol=0, atol=0, msg=k)


def test_the_discriminator_learns_to_tell_smoothed_mels_and_the_decoder_gets_a_gradient():
    torch.manual_seed(0)
    critic = Critic(AdversarialConfig(start_step=0, lr=1e-3), torch.device("cpu"))
    real = torch.randn(4, 80, 32)  # texture at every bin and frame
    smooth = torch.nn.functional.avg_pool2d(real[:, None], 9, stride=1, padding=4)[:, 0]  # what a mean looks like
    fake = smooth.clone().requires_grad_(True)
    first = None
    for _ in range(30):
        terms = critic.generator_terms(real, fake)
        loss = float(critic.discriminator_step(1.0)["adv/disc"])
        first = loss if first is None else first
    assert loss < 0.5 * first
    terms = critic.generator_terms(real, fake)
    (terms["adv/gen"] + terms["fm"]).backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0
    # The decoder's backward leaves gradients in the discriminator; its own step must not use them.
    twin = Critic(AdversarialConfig(start_step=0, lr=1e-3), torch.device("cpu"))
    twin.load_state_dict(copy.deepcopy(critic.state_dict()))  # Adam would share its moment tensors
    twin.generator_terms(real, fake)
    critic.discriminator_step(1.0)  # consumes the pair it was shown
    twin.discriminator_step(1.0)
    for a, b in zip(critic.net.parameters(), twin.net.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="no batch to judge"):
        critic.discriminator_step(1.0)


def test_the_critic_starts_alike_everywhere_and_leaves_the_random_stream_alone():
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a = Critic(AdversarialConfig(start_step=0), torch.device("cpu"), seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = Critic(AdversarialConfig(start_step=0), torch.device("cpu"), seed=3)
    for x, y in zip(a.net.parameters(), b.net.parameters()):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    # A changed learning rate in the config wins over the one saved with the optimiser.
    c = Critic(AdversarialConfig(start_step=0, lr=5e-5), torch.device("cpu"))
    c.load_state_dict(a.state_dict())
    assert [g["lr"] for g in c.optimizer.param_groups] == [5e-5]


def test_both_players_see_only_the_band_a_clip_has(tone_corpus):
    class Spy:
        def generator_terms(self, real, fake):
            self.seen = (real.detach(), fake.detach())
            return {"adv/gen": fake.sum() * 0, "fm": fake.sum() * 0}

    model = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4))
    spy = Spy()
    terms = elbo_terms(model, torch.randn(2, 80, 32), band_bins=torch.tensor([80, 30]), critic=spy)
    assert {"adv/gen", "fm"} <= set(terms)
    for mel in spy.seen:
        assert mel.shape == (2, 80, 32)
        assert float(mel[1, 30:].abs().sum()) == 0 and float(mel[1, :30].abs().sum()) > 0
        assert float(mel[0, 30:].abs().sum()) > 0


def test_band_masked_hides_what_a_band_limited_clip_lacks():
    mel = torch.randn(2, 80, 10)
    out = band_masked(mel, torch.tensor([80, 40]))
    torch.testing.assert_close(out[0], mel[0])
    torch.testing.assert_close(out[1, :40], mel[1, :40])
    assert float(out[1, 40:].abs().sum()) == 0
    assert band_masked(mel, None) is mel


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["adversarial.start_step=2", *STAGE], "adversarial.start_step: must be before steps=2"),
        (["adversarial.start_step=1", *STAGE, "lambdas.adv/disc=0"], "adv/disc: .* give it a weight"),
        (["adversarial.start_step=1", *STAGE, "lambdas.adv/gen=0", "lambdas.fm=0"], "neither adv/gen nor fm has a weight"),
        (["adversarial.start_step=1", "adversarial.loss=wasserstein", *STAGE], "adversarial.loss: expected"),
        (["adversarial.start_step=1", "adversarial.channels=[]", *STAGE], "adversarial.channels"),
        (STAGE, "adv/disc, adv/gen, fm weigh the adversarial stage, which never starts"),
    ],
)
def test_bad_stage_settings_are_named(tmp_path, tone_corpus, overrides, message):
    config = write_config(tmp_path, tone_corpus, steps=2)
    with pytest.raises(ConfigError, match=message):
        load_config(config, overrides).validate()


def test_a_lambdas_override_that_drops_the_reconstruction_is_named(tmp_path, tone_corpus):
    # Without a lambdas section in the YAML, `--set lambdas.X=w` becomes the whole dict.
    config = write_config(tmp_path, tone_corpus, steps=2)
    with pytest.raises(ConfigError, match="lambdas.rec/nll: the reconstruction has no weight"):
        load_config(config, ["lambdas.kl/content=2.0"])


def test_init_from_runs_the_stage_in_a_new_folder_as_resume_would(tmp_path, tone_corpus, capsys):
    config = write_config(tmp_path, tone_corpus, steps=2, ckpt_every=2)
    first = tmp_path / "first"
    train(load_config(config, [f"out_dir={first}"]), progress=False)
    kept = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    stage = ["steps=4", "adversarial.start_step=2", *STAGE]
    # The documented path: a new folder started from the finished run ...
    assert (
        main(
            ["train", "--config", str(config), "--quiet", "--init-from", str(first), "--out-dir", str(tmp_path / "adv")]
            + [a for s in stage for a in ("--set", s)]
        )
        == 0
    )
    # ... leaves that run's files alone, and equals resuming a copy of it in place.
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()} == kept
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in kept.items():
        (copy / name).write_bytes(data)
    train(load_config(config, [f"out_dir={copy}", *stage]), resume=True, progress=False)
    a, b = VAE.load(tmp_path / "adv" / "model.pt").state_dict(), VAE.load(copy / "model.pt").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert [r["step"] for r in read_log(tmp_path / "adv" / "train.csv")] == ["3", "4"]
    # Bad uses are named.
    assert main(["train", "--config", str(config), "--quiet", "--init-from", str(tmp_path / "nowhere")]) == 1
    assert "not a checkpoint file or a run folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pass one"):
        train(load_config(config, [f"out_dir={copy}"]), resume=True, progress=False, init_from=first)
