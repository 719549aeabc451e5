"""The decoder's adversarial stage: RAVE's second training stage, on mels instead of audio.

The ELBO asks the decoder for the mean of p(x | z), and a mean over what
could follow from a latent is a smoothed spectrum: harmonics blur, formant
edges soften, and the vocoder renders that as a muffled, less personal
voice. From `adversarial.start_step` on (config.AdversarialConfig) a
mel-patch discriminator learns to tell the decoder's means from real
standardised log-mels, and the decoder gets two more named terms:

    adv/gen   make the discriminator call the decoded mean real
    fm        match the discriminator's features of the real clip (L1, per layer)

while the ELBO terms stay in the loss, so the decoder may sharpen what it
draws only where that does not cost the reconstruction much. The
discriminator's own loss is "adv/disc". The encoders (and a categorical
codebook) stop learning in this stage (their gradients are dropped before
each step), as RAVE freezes its encoder: the latent space, and the vectors
and adapted voices computed in it, keep their meaning; only the rendering
changes.

Band-limited clips (data.band_limited: mask) show both players only the
bins the clip has: above its band the real and the decoded mel are both set
to 0 (the standardised mean), so nothing there can be told apart.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import AdversarialConfig
from ..model import VAE
from ..vocoder.discriminators import MelPatchDiscriminator
from ..vocoder.losses import discriminator_loss, feature_matching_loss, generator_loss
from .state import average_gradients

BETAS = (0.5, 0.9)  # the discriminator's Adam, as GAN vocoders use


class Critic:
    """The discriminator, its optimiser, and the adversarial terms of both players.

    Not an nn.Module of the objective on purpose: DistributedDataParallel
    wraps the ELBO, whose parameters must all be used in every forward; the
    discriminator joins only in the second stage and averages its own
    gradients across ranks (`discriminator_step`).
    """

    def __init__(self, cfg: AdversarialConfig, device: torch.device, seed: int = 0) -> None:
        self.cfg = cfg
        # Its own seed, the same on every rank (their discriminators must start
        # equal, as DistributedDataParallel makes the VAEs), and no draw from
        # the training's random stream.
        # fork_rng restores only the generators it names; manual_seed sets CUDA's too.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.net = MelPatchDiscriminator(cfg.channels).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=BETAS)
        self._pair: tuple[torch.Tensor, torch.Tensor] | None = None

    def active(self, step: int) -> bool:
        return self.cfg.start_step is not None and step >= self.cfg.start_step

    def generator_terms(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"adv/gen", "fm"} for the decoder; real, fake (B, n_mels, F) standardised, band-masked.

        Remembers the pair (detached), so the discriminator's step that
        follows judges the same batch without decoding it again.
        """
        # The real mel through the fake's dtype: under bf16 autocast the fake
        # carries bf16 rounding, which must not be a tell for the discriminator.
        self._pair = (real.detach().to(fake.dtype).float(), fake.detach().float())
        with torch.no_grad():
            _, real_features = self.net(real)
        fake_logits, fake_features = self.net(fake)
        return {
            "adv/gen": generator_loss(fake_logits, self.cfg.loss),
            "fm": feature_matching_loss(real_features, fake_features),
        }

    def discriminator_step(self, weight: float) -> dict[str, torch.Tensor]:
        """One optimiser step of the discriminator on the last pair; returns {"adv/disc"} (detached).

        Under Adam the weight only switches the step on or off (Adam's steps
        do not scale with the loss); `adversarial.lr` sets the pace.

        Under torchrun each rank judges its own batch and the gradients are
        averaged, as DistributedDataParallel does for the VAE.
        """
        if self._pair is None:
            raise RuntimeError("discriminator_step before generator_terms: there is no batch to judge")
        real, fake = self._pair
        real_logits, _ = self.net(real)
        fake_logits, _ = self.net(fake)
        loss = discriminator_loss(real_logits, fake_logits, self.cfg.loss)
        self.optimizer.zero_grad(set_to_none=True)
        (weight * loss).backward()
        average_gradients(self.net.parameters())
        self.optimizer.step()
        self._pair = None
        return {"adv/disc": loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the config's rate wins over the saved one
            group["lr"], group["betas"] = self.cfg.lr, BETAS


def encoder_parameters(model: VAE) -> list[nn.Parameter]:
    """What the adversarial stage freezes: both encoders and a categorical codebook (the latent space)."""
    codebook = list(model.codebook.parameters()) if hasattr(model, "codebook") else []
    return [*model.speaker_encoder.parameters(), *model.content_encoder.parameters(), *codebook]
