import pytest
import torch

from voicevae.augment import random_warp, warp_mel
from voicevae.config import ConfigError, TrainConfig, VAEConfig
from voicevae.model import VAE
from voicevae.training.elbo import elbo_terms


def test_warp_by_one_is_identity():
    x = torch.randn(2, 80, 30)
    torch.testing.assert_close(warp_mel(x, torch.ones(2)), x, atol=1e-4, rtol=0)


def test_warp_moves_bins_by_the_factor():
    x = torch.randn(2, 80, 30)
    y = warp_mel(x, torch.tensor([0.5, 2.0]))
    torch.testing.assert_close(y[0, 10], x[0, 5], atol=1e-4, rtol=0)  # bin 10 reads 10 * 0.5
    torch.testing.assert_close(y[1, 10], x[1, 20], atol=1e-4, rtol=0)  # bin 10 reads 10 * 2
    torch.testing.assert_close(y[1, 60], x[1, 79], atol=1e-4, rtol=0)  # past the top: the top bin
    # A half-bin position interpolates its neighbours.
    z = warp_mel(x, torch.tensor([1.5, 1.5]))
    torch.testing.assert_close(z[:, 3], (x[:, 4] + x[:, 5]) / 2, atol=1e-4, rtol=0)


def test_random_warp_stays_in_range_and_varies_per_clip():
    torch.manual_seed(0)
    ramp = torch.arange(80.0)[None, :, None].expand(64, 80, 5)
    y = random_warp(ramp, 0.2)
    alpha = y[:, 40, 0] / 40  # a ramp warps into a ramp of slope alpha
    assert alpha.min() >= 1 / 1.2 - 1e-4 and alpha.max() <= 1.2 + 1e-4
    assert alpha.std() > 0.05
    assert random_warp(ramp, 0.0) is ramp


def test_warp_changes_only_the_content_posterior():
    torch.manual_seed(0)
    model = VAE(VAEConfig(channels=32, n_blocks=2, content_dim=4, speaker_dim=8))
    x = torch.randn(3, 80, 32) - 5
    torch.manual_seed(1)
    plain = elbo_terms(model, x)
    torch.manual_seed(1)
    warped = elbo_terms(model, x, content_warp=0.3)
    # The speaker posterior sees the original either way; the content KL does not.
    torch.testing.assert_close(plain["kl/speaker"], warped["kl/speaker"])
    assert not torch.allclose(plain["kl/content"], warped["kl/content"])


def test_content_warp_setting_is_checked():
    with pytest.raises(ConfigError, match="content_warp"):
        TrainConfig(content_warp=1.5).validate()
