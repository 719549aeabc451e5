"""The probability toolkit of the VAE (SEED.md, "The model" and "What the model is used for").

Everything here is plain tensor maths with no knowledge of audio, so each
piece can be checked against an independent truth in tests/test_distributions.py:

- `DiagonalGaussian`: q(z|x) = N(mu, diag(exp(logvar))), reparameterized samples,
  log-density, and the closed-form KL to N(0, I):
  KL = 1/2 (tr Sigma + mu^T mu - D - log |Sigma|).
- `gaussian_nll`: -log N(x; mu, sigma^2 I), the decoder's likelihood.
- `Categorical`: a discrete latent, its KL to the uniform prior.
- `score_function_surrogate` and `MovingAverageBaseline`: the REINFORCE
  estimator for latents that cannot be reparameterized.
- `importance_log_mean_exp`: log (1/N sum_n w_n) from log-weights, the
  importance-sampled log p(x).
- `AggregatedPosterior`: q(z) = 1/N sum_i q(z|x_i), a Gaussian mixture to sample
  new latents from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


@dataclass
class DiagonalGaussian:
    """N(mu, diag(exp(logvar))) over the last `event_dims` axes of `mu`.

    mu, logvar: same shape, e.g. (B, D) for an utterance latent or (B, D, L)
    for a latent sequence. Reductions (`log_prob`, `kl_standard_normal`) sum
    over every axis but the first, giving (B,) or, for samples, (K, B).
    """

    mu: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def rsample(self, n: int | None = None) -> torch.Tensor:
        """Reparameterized draw z = mu + sigma * eps, eps ~ N(0, I).

        The randomness sits in eps, which has no parameters, so gradients
        reach mu and logvar through z. n=None gives mu's shape; n=K gives (K, *mu.shape).
        """
        shape = self.mu.shape if n is None else (n, *self.mu.shape)
        eps = torch.randn(shape, device=self.mu.device, dtype=self.mu.dtype)
        return self.mu + self.std * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z), summed over all latent axes: z (..., B, *event) -> (..., B)."""
        lp = -0.5 * (LOG_2PI + self.logvar + (z - self.mu) ** 2 * torch.exp(-self.logvar))
        return lp.flatten(start_dim=z.ndim - self.mu.ndim + 1).sum(-1)

    def kl_standard_normal(self, reduce: bool = True) -> torch.Tensor:
        """Closed-form KL(q || N(0, I)). reduce=True sums to (B,); False keeps elementwise terms."""
        kl = 0.5 * (torch.exp(self.logvar) + self.mu**2 - 1.0 - self.logvar)
        return kl.flatten(start_dim=1).sum(-1) if reduce else kl


def standard_normal_log_prob(z: torch.Tensor, event_ndim: int) -> torch.Tensor:
    """log N(z; 0, I), summed over the last `event_ndim` axes."""
    lp = -0.5 * (LOG_2PI + z**2)
    return lp.flatten(start_dim=z.ndim - event_ndim).sum(-1)


def gaussian_nll(x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """Elementwise -log N(x; mu, sigma^2); log_sigma broadcasts against x."""
    return 0.5 * LOG_2PI + log_sigma + 0.5 * ((x - mu) * torch.exp(-log_sigma)) ** 2


@dataclass
class Categorical:
    """Independent categoricals: logits (B, K, *positions), choices along axis 1."""

    logits: torch.Tensor

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    def sample(self, n: int | None = None) -> torch.Tensor:
        """Class indices (B, *positions), or (n, B, *positions). Not differentiable."""
        probs = F.softmax(self.logits, dim=1).movedim(1, -1)
        flat = probs.reshape(-1, self.num_classes)
        draws = torch.multinomial(flat, 1 if n is None else n, replacement=True)  # (M, n)
        if n is None:
            return draws.reshape(probs.shape[:-1])
        return draws.T.reshape(n, *probs.shape[:-1])

    def log_prob(self, index: torch.Tensor) -> torch.Tensor:
        """log q(index), summed over positions: index (..., B, *positions) -> (..., B)."""
        logp = F.log_softmax(self.logits, dim=1)
        lead = index.ndim - (logp.ndim - 1)
        logp = logp.expand(*index.shape[:lead], *logp.shape)
        picked = torch.gather(logp, lead + 1, index.unsqueeze(lead + 1)).squeeze(lead + 1)
        return picked.flatten(start_dim=lead + 1).sum(-1)

    def kl_uniform(self) -> torch.Tensor:
        """KL(q || Uniform(K)) = sum_k q_k log q_k + log K, summed over positions: (B,)."""
        logp = F.log_softmax(self.logits, dim=1)
        kl = (logp.exp() * logp).sum(1) + math.log(self.num_classes)
        return kl.flatten(start_dim=1).sum(-1)


def score_function_surrogate(h: torch.Tensor, log_q: torch.Tensor, baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Surrogate objective whose gradient is the score-function estimate.

    With z_i ~ q_theta drawn without a gradient path, h_i = h(x, z_i) and
    log_q_i = log q_theta(z_i | x), the gradient of

        mean_i[ (h_i - b).detach() * log_q_i + h_i ]

    is 1/N sum_i (h_i - b) d/dtheta log q(z_i) plus the direct gradient of h:
    the REINFORCE estimator of d/dtheta E_q[h] (SEED.md). Subtracting a baseline b
    that does not depend on z_i keeps it unbiased (E_q[d log q] = 0) while
    lowering its variance. Maximize the returned scalar.
    """
    return ((h - baseline).detach() * log_q + h).mean()


class MovingAverageBaseline:
    """Exponential moving average of h, the usual control variate for REINFORCE."""

    def __init__(self, decay: float = 0.9) -> None:
        self.decay = decay
        self.value: float | None = None

    def __call__(self) -> float:
        return 0.0 if self.value is None else self.value

    def update(self, h: torch.Tensor) -> None:
        mean = float(h.detach().mean())
        self.value = mean if self.value is None else self.decay * self.value + (1 - self.decay) * mean

    def state_dict(self) -> dict[str, float | None]:
        return {"decay": self.decay, "value": self.value}

    def load_state_dict(self, state: dict[str, float | None]) -> None:
        self.decay = float(state["decay"])  # type: ignore[arg-type]
        self.value = state["value"]


def importance_log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/N sum_n exp(log_w_n)) along `dim`, computed stably with log-sum-exp.

    With log_w_n = log p(x|z_n) + log p(z_n) - log q(z_n|x), z_n ~ q(z|x), this
    is the importance-sampled estimate of log p(x).
    """
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


class AggregatedPosterior:
    """q(z) = 1/N sum_i N(mu_i, diag(exp(logvar_i))): a mixture over training examples.

    mu, logvar: (N, D). The decoder was trained on latents drawn from this
    mixture, so samples from it decode better than samples from N(0, I).
    """

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        if mu.ndim != 2 or mu.shape != logvar.shape or mu.shape[0] == 0:
            raise ValueError(
                f"AggregatedPosterior needs mu, logvar of equal shape (N, D), got {tuple(mu.shape)} and {tuple(logvar.shape)}"
            )
        self.mu, self.logvar = mu, logvar

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, D): pick a component uniformly, then draw from it."""
        idx = torch.randint(0, self.mu.shape[0], (n,), generator=generator, device=self.mu.device)
        eps = torch.randn((n, self.mu.shape[1]), generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        return self.mu[idx] + torch.exp(0.5 * self.logvar[idx]) * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z) for z (M, D) -> (M,)."""
        comp = DiagonalGaussian(self.mu.unsqueeze(0), self.logvar.unsqueeze(0))
        # (M, 1, D) against (1, N, D): log-density of each z under each component.
        lp = -0.5 * (LOG_2PI + comp.logvar + (z.unsqueeze(1) - comp.mu) ** 2 * torch.exp(-comp.logvar))
        return importance_log_mean_exp(lp.sum(-1), dim=1)


def importance_estimate(f_values: torch.Tensor, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """E_p[f] ~ 1/N sum_n f(x_n) p(x_n) / q(x_n) for x_n ~ q (all inputs (N,))."""
    return (f_values * torch.exp(log_p - log_q)).mean()
