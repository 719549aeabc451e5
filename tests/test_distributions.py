"""The VAE's probability maths against truths nobody here chose.

KL and log-densities against torch.distributions; the importance-sampled
log p(x) against the exact likelihood of probabilistic PCA; the
score-function gradient against the analytic gradient; the seed's
importance-sampling example against numerical quadrature.
"""

import math

import pytest
import torch
from scipy import integrate
from torch import distributions as D

from voicevae.distributions import (
    AggregatedPosterior,
    Categorical,
    DiagonalGaussian,
    MovingAverageBaseline,
    gaussian_nll,
    importance_estimate,
    importance_log_mean_exp,
    score_function_surrogate,
    standard_normal_log_prob,
)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 6, 3, generator=g)
    logvar = torch.randn(4, 6, 3, generator=g)
    q = DiagonalGaussian(mu, logvar)
    ref = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(0.0, 1.0)).flatten(1).sum(-1)
    torch.testing.assert_close(q.kl_standard_normal(), ref)


def test_log_prob_and_nll_match_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    q = DiagonalGaussian(mu, logvar)
    z = q.rsample(7)
    ref = D.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    torch.testing.assert_close(q.log_prob(z), ref)
    torch.testing.assert_close(standard_normal_log_prob(z, 1), D.Normal(0.0, 1.0).log_prob(z).sum(-1))
    x, log_sigma = torch.randn(3, 5, generator=g), torch.randn(5, generator=g)
    torch.testing.assert_close(gaussian_nll(x, mu, log_sigma), -D.Normal(mu, log_sigma.exp()).log_prob(x))


def test_reparameterized_samples_carry_gradients_and_right_moments():
    mu = torch.tensor([1.5, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    torch.manual_seed(0)
    z = DiagonalGaussian(mu, logvar).rsample(200_000)
    torch.testing.assert_close(z.mean(0), mu.detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), torch.tensor([1.0, 4.0]), atol=0.05, rtol=0)
    (z**2).mean(0).sum().backward()  # d/dmu E[z^2] = 2 mu
    torch.testing.assert_close(mu.grad, 2 * mu.detach(), atol=0.05, rtol=0)


def test_categorical_kl_and_log_prob():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 5, 3, generator=g)
    q = Categorical(logits)
    ref = D.kl_divergence(D.Categorical(logits=logits.movedim(1, -1)), D.Categorical(logits=torch.zeros(5))).sum(-1)
    torch.testing.assert_close(q.kl_uniform(), ref)
    idx = q.sample(4)
    assert idx.shape == (4, 2, 3)
    ref_lp = D.Categorical(logits=logits.movedim(1, -1)).log_prob(idx).sum(-1)
    torch.testing.assert_close(q.log_prob(idx), ref_lp)


# --- importance-sampled log p(x) against probabilistic PCA -----------------------------


def _ppca(seed=0, d_x=6, d_z=3, sigma=0.5):
    """x = W z + b + sigma * eps with orthogonal columns of W, so the exact posterior is diagonal."""
    g = torch.Generator().manual_seed(seed)
    q_mat, _ = torch.linalg.qr(torch.randn(d_x, d_z, generator=g, dtype=torch.float64))
    w = q_mat * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    b = torch.randn(d_x, generator=g, dtype=torch.float64)
    x = torch.randn(4, d_x, generator=g, dtype=torch.float64) * 2
    cov = w @ w.T + sigma**2 * torch.eye(d_x, dtype=torch.float64)
    exact = D.MultivariateNormal(b, cov).log_prob(x)
    # Posterior N(M^-1 W^T (x - b), sigma^2 M^-1), M = W^T W + sigma^2 I (diagonal here).
    m_diag = (w**2).sum(0) + sigma**2
    post_mu = (x - b) @ w / m_diag
    post_logvar = torch.log(sigma**2 / m_diag).expand_as(post_mu)
    return w, b, sigma, x, exact, post_mu, post_logvar


def _ppca_log_weights(w, b, sigma, x, q, n):
    z = q.rsample(n)  # (n, B, d_z)
    mu_x = z @ w.T + b
    log_lik = -gaussian_nll(x, mu_x, torch.tensor(math.log(sigma), dtype=torch.float64)).sum(-1)
    return log_lik + standard_normal_log_prob(z, 1) - q.log_prob(z)


def test_importance_sampled_log_px_is_exact_with_the_true_posterior():
    w, b, sigma, x, exact, mu, logvar = _ppca()
    torch.manual_seed(0)
    log_w = _ppca_log_weights(w, b, sigma, x, DiagonalGaussian(mu, logvar), 3)
    # With q equal to the true posterior every weight equals p(x).
    torch.testing.assert_close(importance_log_mean_exp(log_w), exact, atol=1e-9, rtol=0)


def test_importance_sampled_log_px_converges_with_an_approximate_posterior():
    w, b, sigma, x, exact, mu, logvar = _ppca(seed=3)
    q = DiagonalGaussian(mu + 0.3, logvar + 0.7)  # wrong mean, too wide
    torch.manual_seed(1)
    log_w = _ppca_log_weights(w, b, sigma, x, q, 50_000)
    estimate = importance_log_mean_exp(log_w)
    elbo = log_w.mean(0)
    torch.testing.assert_close(estimate, exact, atol=0.02, rtol=0)
    # The ELBO is a strict lower bound when q is not the posterior.
    assert (elbo < exact - 0.05).all()


# --- score-function estimator -----------------------------------------------------------


def test_score_function_gradient_matches_analytic_on_a_categorical():
    theta = torch.tensor([[0.3, -1.0, 0.5, 2.0, 0.0]]).T.unsqueeze(0)  # logits (1, 5, 1)
    f = torch.tensor([1.0, 4.0, -2.0, 0.5, 3.0])
    exact_param = theta.clone().requires_grad_(True)
    exact = (torch.softmax(exact_param, 1).squeeze() * f).sum()
    (exact_grad,) = torch.autograd.grad(exact, exact_param)

    param = theta.clone().requires_grad_(True)
    q = Categorical(param)
    torch.manual_seed(0)
    idx = q.sample(400_000)  # (N, 1, 1)
    h = f[idx.squeeze(-1).squeeze(-1)].unsqueeze(-1)  # (N, 1)
    surrogate = score_function_surrogate(h, q.log_prob(idx), baseline=float(exact.detach()))
    (grad,) = torch.autograd.grad(surrogate, param)
    torch.testing.assert_close(grad, exact_grad, atol=0.01, rtol=0)


def test_score_function_includes_the_direct_gradient_of_h():
    # h = -log q(z) depends on theta directly; E_q[h] is the entropy.
    theta = torch.tensor([0.2, 1.0, -0.7]).reshape(1, 3, 1)
    exact_param = theta.clone().requires_grad_(True)
    p = torch.softmax(exact_param, 1)
    (exact_grad,) = torch.autograd.grad(-(p * p.log()).sum(), exact_param)

    param = theta.clone().requires_grad_(True)
    q = Categorical(param)
    torch.manual_seed(1)
    idx = q.sample(400_000)
    log_q = q.log_prob(idx)
    (grad,) = torch.autograd.grad(score_function_surrogate(-log_q, log_q), param)
    torch.testing.assert_close(grad, exact_grad, atol=0.01, rtol=0)


def test_baseline_lowers_variance_without_bias():
    theta = torch.zeros(1, 4, 1)
    f = torch.tensor([10.0, 11.0, 12.0, 13.0])  # a large offset: the case a baseline fixes

    def estimate(baseline: float, seed: int) -> torch.Tensor:
        param = theta.clone().requires_grad_(True)
        q = Categorical(param)
        torch.manual_seed(seed)
        idx = q.sample(16)
        h = f[idx.squeeze(-1).squeeze(-1)].unsqueeze(-1)
        return torch.autograd.grad(score_function_surrogate(h, q.log_prob(idx), baseline), param)[0].flatten()

    avg = MovingAverageBaseline(decay=0.0)
    avg.update(f.mean().reshape(1))
    plain = torch.stack([estimate(0.0, s) for s in range(300)])
    based = torch.stack([estimate(avg(), s) for s in range(300)])
    assert based.var(0).sum() < 0.05 * plain.var(0).sum()
    exact = torch.softmax(theta.flatten(), 0) * (f - (torch.softmax(theta.flatten(), 0) * f).sum())
    torch.testing.assert_close(based.mean(0), exact, atol=0.1, rtol=0)


# --- the seed's worked importance-sampling check ---------------------------------------


def test_seed_importance_sampling_example_against_quadrature():
    f = lambda x: 10 * torch.exp(-((x - 3) ** 4))  # noqa: E731
    truth, _ = integrate.quad(lambda x: 10 * math.exp(-((x - 3) ** 4)) * math.exp(-x * x / 2) / math.sqrt(2 * math.pi), -20, 20)
    p, q = D.Normal(0.0, 1.0), D.Normal(3.0, 1.0)
    torch.manual_seed(0)
    plain, weighted = [], []
    for _ in range(200):
        xp = p.sample((1000,))
        plain.append(f(xp).mean())
        xq = q.sample((1000,))
        weighted.append(importance_estimate(f(xq), p.log_prob(xq), q.log_prob(xq)))
    plain, weighted = torch.stack(plain), torch.stack(weighted)
    assert abs(float(weighted.mean()) - truth) < 0.01 * truth
    # Sampling from q = N(3, 1) has far less variance than sampling from p itself.
    assert weighted.std() < 0.3 * plain.std()


def test_aggregated_posterior_matches_a_torch_mixture():
    g = torch.Generator().manual_seed(4)
    mu, logvar = torch.randn(5, 2, generator=g) * 3, torch.randn(5, 2, generator=g) * 0.3
    agg = AggregatedPosterior(mu, logvar)
    mix = D.MixtureSameFamily(D.Categorical(torch.ones(5)), D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1))
    z = torch.randn(9, 2) * 3
    torch.testing.assert_close(agg.log_prob(z), mix.log_prob(z))
    samples = agg.sample(100_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.mean(0), mix.mean, atol=0.05, rtol=0)
    torch.testing.assert_close(samples.var(0), mix.variance, atol=0.15, rtol=0)
    with pytest.raises(ValueError, match="equal shape"):
        AggregatedPosterior(mu, logvar[:3])
