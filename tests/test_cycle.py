"""The content-consistency term: decode with another voice, read the content back."""

import pytest
import torch

from voicevae.config import ConfigError, TrainConfig, VAEConfig
from voicevae.model import VAE
from voicevae.training.elbo import content_cycle_loss, elbo_terms
from voicevae.training.state import weighted_loss


def _model() -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(channels=32, n_blocks=2, content_dim=4, speaker_dim=8))


def test_term_is_added_only_when_asked_and_leaves_the_elbo_alone():
    model, x = _model(), torch.randn(4, 80, 32) - 5
    torch.manual_seed(1)
    plain = elbo_terms(model, x)
    torch.manual_seed(1)
    cycled = elbo_terms(model, x, content_cycle=True)
    assert "cycle/content" not in plain
    assert cycled["cycle/content"] > 0 and torch.isfinite(cycled["cycle/content"])
    for name in ("rec/nll", "kl/content", "kl/speaker", "elbo"):
        torch.testing.assert_close(plain[name], cycled[name])
    # With weight 0 it adds nothing to the loss; with weight w it adds w * term.
    lambdas = TrainConfig().lambdas
    base = weighted_loss(plain, lambdas)
    torch.testing.assert_close(weighted_loss(cycled, {**lambdas, "cycle/content": 0.0}), base)
    torch.testing.assert_close(weighted_loss(cycled, {**lambdas, "cycle/content": 2.0}), base + 2 * cycled["cycle/content"])


def test_decodes_with_another_voice_and_trains_decoder_not_the_target():
    model = _model()
    z_c, mean = torch.randn(4, 4, 16), torch.randn(4, 4, 16, requires_grad=True)
    same = torch.randn(1, 8).expand(4, 8)
    voices = torch.randn(4, 8)

    def own_voice(z_s):  # the same computation without the swap
        return (model.content_encoder(model.decoder(z_c, z_s)).mu - mean.detach()).square().sum()

    # Rolling identical voices changes nothing; distinct voices are swapped.
    torch.testing.assert_close(content_cycle_loss(model, mean, z_c, same), own_voice(same))
    loss = content_cycle_loss(model, mean, z_c, voices)
    assert not torch.allclose(loss, own_voice(voices))
    torch.testing.assert_close(loss, own_voice(torch.roll(voices, 2, dims=0)))
    loss.backward()
    assert mean.grad is None  # the content code put in is a fixed target
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_needs_a_gaussian_content_latent():
    cfg = TrainConfig(model=VAEConfig(content_latent="categorical"), lambdas={"sf/reinforce": 1.0, "cycle/content": 1.0})
    with pytest.raises(ConfigError, match="cycle/content"):
        cfg.validate()


def test_voice_cycle_rebuilds_each_clip_from_content_read_off_another_voice():
    from voicevae.training.elbo import voice_cycle_loss

    model, x = _model(), torch.randn(4, 80, 32) - 5
    xn, frames = model.prepare(x)
    z_c, voices = torch.randn(4, 4, 16), torch.randn(4, 8, requires_grad=True)

    def rebuilt_from(rendering_voices):  # the same computation with the rendering's voices given
        torch.manual_seed(2)
        rendered = model.decoder(z_c, rendering_voices).detach()
        back = model.decoder(model.content_encoder(rendered).rsample(), voices)
        return -model.log_likelihood(xn, back, frames).sum() / (4 * frames)

    torch.manual_seed(2)
    loss = voice_cycle_loss(model, xn, frames, z_c, voices)
    # Rendered with the voice of the clip half a batch away, rebuilt with each clip's own.
    torch.testing.assert_close(loss, rebuilt_from(torch.roll(voices, 2, dims=0).detach()))
    assert not torch.allclose(loss, rebuilt_from(voices.detach()))
    loss.backward()
    # The reader and the rebuilder learn from it; the rendering (made without gradient) does not.
    for part in (model.content_encoder, model.decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    # It joins the ELBO's terms only when asked, leaving the others as they were.
    torch.manual_seed(1)
    plain = elbo_terms(model, x)
    torch.manual_seed(1)
    cycled = elbo_terms(model, x, voice_cycle=True)
    assert "cycle/voices" not in plain and torch.isfinite(cycled["cycle/voices"])
    for name in ("rec/nll", "kl/content", "kl/speaker"):
        torch.testing.assert_close(plain[name], cycled[name])
    cfg = TrainConfig(model=VAEConfig(content_latent="categorical"), lambdas={"sf/reinforce": 1.0, "cycle/voices": 1.0})
    with pytest.raises(ConfigError, match="cycle/voices"):
        cfg.validate()
