"""The VAE's shape contracts, its inference verbs and its checkpoint round trip."""

import pytest
import torch

from voicevae.checkpoint import CheckpointError, save_checkpoint
from voicevae.config import ConfigError, TrainConfig, VAEConfig, from_dict
from voicevae.model import VAE
from voicevae.training.elbo import elbo_terms, free_bits_kl, kl_weight
from voicevae.training.state import weighted_loss

SMALL = dict(channels=32, n_blocks=2, content_dim=4, speaker_dim=8)


@pytest.fixture(params=["gaussian", "categorical"])
def model(request):
    torch.manual_seed(0)
    return VAE(VAEConfig(**SMALL, content_latent=request.param, content_codes=16))


def test_shapes_for_odd_lengths(model):
    x = torch.randn(3, 80, 37) - 5
    q = model.encode(x)
    assert q.speaker.mu.shape == (3, 8)
    assert q.frames == 37
    assert model.reconstruct(x).shape == (3, 80, 37)
    assert model.convert(x, torch.zeros(8)).shape == (3, 80, 37)
    assert model.sample_prior(2, 21).shape == (2, 80, 21)
    with torch.no_grad():
        lp = model.log_px(x, n_samples=6, chunk=4)
    assert lp.shape == (3,) and torch.isfinite(lp).all()


def test_wrong_input_shape_is_refused(model):
    with pytest.raises(ValueError, match=r"expected log-mel \(B, 80, F\)"):
        model.encode(torch.randn(2, 40, 10))


def test_elbo_terms_are_named_and_backpropagate(model):
    x = torch.randn(4, 80, 32) - 5
    terms = elbo_terms(model, x, n_samples=2, free_bits=0.0)
    assert {"rec/nll", "kl/content", "kl/speaker", "elbo"} <= set(terms)
    # Without free bits and with KL weight 1 the loss is exactly -ELBO (plus the REINFORCE surrogate).
    loss = weighted_loss(terms, TrainConfig().lambdas, {"kl/": 1.0})
    expected = terms["rec/nll"] + terms["kl/content"] + terms["kl/speaker"]
    if "sf/reinforce" in terms:
        expected = expected + terms["sf/reinforce"]
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(-(terms["rec/nll"] + terms["kl/content"] + terms["kl/speaker"]).detach(), terms["elbo"])
    loss.backward()
    enc = model.content_encoder.out.weight.grad
    assert enc is not None and enc.abs().sum() > 0


def test_log_px_is_above_the_elbo_on_average():
    # E[log w] = ELBO <= log E[w]: the importance-sampled estimate lies above the ELBO.
    torch.manual_seed(1)
    model = VAE(VAEConfig(**SMALL))
    x = torch.randn(2, 80, 16) - 5
    with torch.no_grad():
        elbo = float(elbo_terms(model, x, n_samples=64)["elbo"]) * 16  # nats per utterance
        log_px = float(model.log_px(x, n_samples=64).mean()) + float(torch.log(model.mel_std).sum() * 16)
    assert log_px > elbo


def test_kl_warmup_is_linear_then_flat():
    assert kl_weight(0, 100) == 0.0
    assert kl_weight(50, 100) == 0.5
    assert kl_weight(100, 100) == 1.0 and kl_weight(5000, 100) == 1.0
    assert kl_weight(3, 0) == 1.0


def test_free_bits_stop_gradient_below_floor():
    kl = torch.tensor([[[0.01], [2.0]], [[0.03], [4.0]]], requires_grad=True)  # (B=2, D=2, L=1)
    out = free_bits_kl(kl, free_bits=0.5)
    out.sum().backward()
    assert torch.all(kl.grad[:, 0] == 0)  # dim 0 is under the floor: no push to shrink it
    assert torch.all(kl.grad[:, 1] > 0)
    torch.testing.assert_close(out, torch.full((2,), 0.5 + 3.0))


def test_save_load_round_trip(tmp_path, model):
    model.set_normalization(torch.linspace(-6, -2, 80), torch.linspace(1, 2, 80))
    path = model.save(tmp_path / "m.pt")
    loaded = VAE.load(path)
    x = torch.randn(1, 80, 24) - 5
    torch.testing.assert_close(loaded.reconstruct(x), model.eval().reconstruct(x))
    assert loaded.config == model.config and loaded.mel_config == model.mel_config


def test_loading_the_wrong_kind_of_file_names_it(tmp_path):
    path = save_checkpoint(tmp_path / "voc.pt", "vocoder", {"config": {}})
    with pytest.raises(CheckpointError, match=r"voc.pt: is a 'vocoder' checkpoint, expected 'vae'"):
        VAE.load(path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint") as info:
        VAE.load(junk)
    assert "weights_only" not in str(info.value)  # PyTorch's unsafe advice is not passed on


def test_unknown_config_key_is_an_error():
    with pytest.raises(ConfigError, match="unknown setting.*chanels"):
        from_dict(VAEConfig, {"chanels": 3}, "cfg.yaml: model")
    with pytest.raises(ConfigError, match="content_latent"):
        from_dict(VAEConfig, {"content_latent": "binary"}, "cfg.yaml: model")
