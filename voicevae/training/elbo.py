"""The VAE's training objective: a K-sample ELBO as a dict of named terms.

    ELBO = E_q[log p(x | z)] - KL(q(z_c|x) || p(z_c)) - KL(q(z_s|x) || p(z_s))

The reconstruction term is estimated with K samples z ~ q(z|x) (K =
`n_samples`), the KL terms in closed form. Everything is reported in nats per
mel frame so numbers compare across segment lengths. The loss that is
minimised is a weighted sum of the terms; the KL weight follows the warm-up
schedule `kl_weight(step)`, and free bits stop the optimiser from pressing
the KL of any latent dimension below a floor.

`ELBO` wraps the model as an nn.Module, so that DistributedDataParallel sees
the whole computation in one forward call and synchronises the gradients;
the model itself knows nothing of its objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from torch import nn

from ..augment import random_warp
from ..distributions import Categorical, MovingAverageBaseline, score_function_surrogate
from ..model import VAE, band_masked
from .adversarial import Critic
from .phonetic import PhoneBatch, Phonetic


def kl_weight(step: int, warmup_steps: int) -> float:
    """KL annealing: 0 at step 0, rising linearly to 1 at `warmup_steps`, then 1."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


def free_bits_kl(kl_elements: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL with a floor of `free_bits` nats per latent dimension.

    kl_elements (B, D, ...) elementwise KL terms. Each latent dimension's KL,
    averaged over the batch (and positions), counts as at least `free_bits`, so
    the optimiser gains nothing by collapsing a dimension below that. Returns
    the per-example total (B,) to add to the loss.
    """
    total = kl_elements.flatten(start_dim=2).sum(-1)  # (B, D): summed over positions
    if free_bits <= 0:
        return total.sum(-1)
    per_dim = reduce(total, "b d -> d", "mean")
    floor = free_bits * kl_elements[0, 0].numel()  # free bits for each position of the dim
    # Where the batch mean is under the floor the term is constant (no gradient).
    clamped = torch.where(per_dim < floor, torch.full_like(per_dim, floor), per_dim)
    return clamped.sum().expand(total.shape[0])


def elbo_terms(
    model: VAE,
    mel: torch.Tensor,
    n_samples: int = 1,
    free_bits: float = 0.0,
    baseline: MovingAverageBaseline | None = None,
    content_warp: float = 0.0,
    content_cycle: bool = False,
    encoder_input: torch.Tensor | None = None,
    band_bins: torch.Tensor | None = None,
    speakers: torch.Tensor | None = None,
    channel_speaker: bool = True,
    critic: Critic | None = None,
    phones: tuple[Phonetic, PhoneBatch] | None = None,
    pitch: torch.Tensor | None = None,
    voice_cycle: bool = False,
) -> dict[str, torch.Tensor]:
    """Named ELBO terms for a batch of log-mels (B, n_mels, F), each in nats per frame.

    content_warp > 0 feeds the content encoder a voice-perturbed copy of the
    batch (see augment.py); the speaker encoder and the target stay unchanged.
    content_cycle adds "cycle/content" (see content_cycle_loss): not part of
    the ELBO, a regulariser for what the ELBO never sees, a decode with
    another utterance's voice. voice_cycle adds "cycle/voices" (see
    voice_cycle_loss), likewise outside the ELBO.
    encoder_input (B, n_mels, F): what both encoders see when it differs from
    the target `mel` (channel augmentation); the posterior is then
    q(z | x~) with x~ a noisy function of x, still a lower bound on log p(x).
    channel_speaker=False: only the content encoder sees encoder_input; the
    speaker encoder reads the clean `mel`.
    band_bins (B,): bins of each clip the reconstruction scores (data.py).
    speakers (B,): speaker labels; with them "speaker/consistency"
    (speaker_consistency_loss) is computed.
    critic: in the adversarial stage, the discriminator that judges the
    first sample's decoded mean against the clip; adds "adv/gen" and "fm"
    (training/adversarial.py).
    phones: the phonetic term and this step's whole clips; adds "phone/ctc"
    (training/phonetic.py).
    pitch (B, 3, F): the clips' intonation, for a `model.pitch_input` decoder; with a harmonic
    source it adds "pitch/register" (register_loss).

    Returns scalars:
      "rec/nll"      -E_q[log p(x|z)] (K-sample average)
      "kl/content"   KL of the content latent (free bits applied)
      "kl/speaker"   KL of the speaker latent (free bits applied)
      "elbo"         the ELBO itself without free bits (for logging, not optimised)
      "sf/reinforce" for the categorical option only: a surrogate whose gradient
                     is minus the REINFORCE estimate of d/dtheta E_q[log p(x|z)].
    """
    xn, frames = model.prepare(mel)
    n_frames = mel.shape[0] * frames
    seen = mel if encoder_input is None else encoder_input
    seen_n = xn if encoder_input is None else model.prepare(encoder_input)[0]
    q_s = model.speaker_encoder(seen_n if channel_speaker else xn)
    q_c = model.content_encoder(model.prepare(random_warp(seen, content_warp))[0] if content_warp > 0 else seen_n)
    z_s = q_s.rsample(n_samples)  # (K, B, Ds)
    z_c, index = model.sample_content(q_c, n_samples)  # (K, B, Dc, L)
    contour = None if pitch is None else repeat(pitch, "b c f -> (k b) c f", k=n_samples)
    mu = model.decoder(rearrange(z_c, "k b d l -> (k b) d l"), rearrange(z_s, "k b d -> (k b) d"), contour)
    mu = rearrange(mu, "(k b) m f -> k b m f", k=n_samples)
    log_lik = model.log_likelihood(xn, mu, frames, band_bins)  # (K, B)

    if isinstance(q_c, Categorical):
        kl_c_raw = q_c.kl_uniform()
        kl_c = kl_c_raw  # free bits do not apply to the categorical KL
    else:
        kl_c_elems = q_c.kl_standard_normal(reduce=False)
        kl_c_raw = kl_c_elems.flatten(start_dim=1).sum(-1)
        kl_c = free_bits_kl(kl_c_elems, free_bits)
    kl_s_elems = q_s.kl_standard_normal(reduce=False)
    kl_s_raw = kl_s_elems.sum(-1)
    kl_s = free_bits_kl(rearrange(kl_s_elems, "b d -> b d 1"), free_bits)

    terms = {
        "rec/nll": -log_lik.mean(0).sum() / n_frames,
        "kl/content": kl_c.sum() / n_frames,
        "kl/speaker": kl_s.sum() / n_frames,
        "elbo": (log_lik.mean(0) - kl_c_raw - kl_s_raw).sum().detach() / n_frames,
    }
    if pitch is not None and model.decoder.comb is not None:
        terms["pitch/register"] = register_loss(model, z_s[0], pitch)
    if content_cycle:
        terms["cycle/content"] = content_cycle_loss(model, q_c.mu, z_c[0], z_s[0], pitch) / n_frames
    if voice_cycle:
        terms["cycle/voices"] = voice_cycle_loss(model, xn, frames, z_c[0], z_s[0], pitch, band_bins)
    if speakers is not None:
        terms["speaker/consistency"] = speaker_consistency_loss(q_s.mu, speakers)
    if critic is not None:
        real = band_masked(xn[..., :frames], band_bins)
        terms.update(critic.generator_terms(real, band_masked(mu[0, ..., :frames], band_bins)))
    if phones is not None:
        terms["phone/ctc"] = phones[0].term(model, phones[1])
    if index is not None:
        # REINFORCE for the discrete content codes with h = log p(x|z) (the KL is
        # in closed form above). Baseline: with K > 1 samples, the mean of the
        # other K - 1 samples of the same utterance (leave-one-out); with K = 1,
        # a moving average over batches.
        log_q = q_c.log_prob(index)  # (K, B)
        h = log_lik.detach()
        b: torch.Tensor | float
        if n_samples > 1:
            b = (h.sum(0, keepdim=True) - h) / (n_samples - 1)
        else:
            b = baseline() if baseline is not None else 0.0
        score_part = score_function_surrogate(h, log_q, b) - h.mean()
        terms["sf/reinforce"] = -score_part / frames
        if baseline is not None:
            baseline.update(h)
    return terms


def register_loss(model: VAE, z_s: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """Squared error, in semitones^2, of the register the decoder reads from z_s (B, Ds) against each clip's own.

    pitch (B, 3, F): row 2 holds the clip's mean log2 F0. Clips with no
    voiced frame have no register and are left out. A conversion places the
    harmonic source at the register its target's latent gives (VAE.with_register).
    """
    voiced = pitch[:, 1].amax(-1) > 0  # (B,)
    # In float32 even under autocast: bfloat16 rounds a log2 F0 near 7 to 1/32 octave, a floor of its own.
    with torch.autocast(z_s.device.type, enabled=False):
        register = model.decoder.register(z_s.float())
    if not voiced.any():
        return register.sum() * 0.0  # still through the head, so distributed training sees it used on every rank
    error = 12.0 * (register - pitch[:, 2, 0].float())
    return error[voiced].square().mean()


def content_cycle_loss(
    model: VAE, content_mean: torch.Tensor, z_c: torch.Tensor, z_s: torch.Tensor, pitch: torch.Tensor | None = None
) -> torch.Tensor:
    """Content consistency under a change of voice, summed over the batch.

    content_mean, z_c (B, Dc, L): the content posterior mean and a sample;
    z_s (B, Ds). Each utterance's content is decoded with the voice of the
    utterance half a batch away (batches hold their speakers' clips side by
    side, so that is another speaker) and encoded again; the content mean
    read back should be the one put in. The ELBO only ever decodes a clip
    with its own voice, so nothing else asks the decoder to keep the words
    when the voice changes, which is all conversion does. The target is
    detached: the term moves the decoder and the re-encoding, not the
    content code itself.
    """
    swapped = torch.roll(z_s, shifts=z_s.shape[0] // 2, dims=0)
    return content_read_back_loss(model, content_mean, z_c, swapped, pitch)


def content_read_back_loss(
    model: VAE, content_mean: torch.Tensor, z_c: torch.Tensor, voices: torch.Tensor, pitch: torch.Tensor | None = None
) -> torch.Tensor:
    """z_c (B, Dc, L) decoded with `voices` (B, Ds) and encoded again: squared error to content_mean, summed.

    The target is detached, so the term moves the decoder (and the content
    encoder, where it is trained), not the content code it starts from.
    """
    # Decoded as a conversion is: a harmonic source at the register of the voice swapped in.
    q_back = model.content_encoder(model.decoder(z_c, voices, model.with_register(pitch, voices)))
    return (q_back.mu - content_mean.detach()).square().sum()


def voice_cycle_loss(
    model: VAE,
    xn: torch.Tensor,
    frames: int,
    z_c: torch.Tensor,
    z_s: torch.Tensor,
    pitch: torch.Tensor | None = None,
    band_bins: torch.Tensor | None = None,
) -> torch.Tensor:
    """-log p(x | content read off x rendered in another voice, x's own voice), in nats per frame.

    xn (B, n_mels, F) the normalised clips, z_c (B, Dc, L) and z_s (B, Ds)
    their latents, band_bins as for rec/nll. Each clip is decoded with the voice of the clip half a
    batch away (another speaker, as in content_cycle_loss), the content
    encoder reads that rendering, and the decoder must rebuild the clip with
    its own voice from what was read. A conversion reads content off someone
    else's voice; the ELBO only ever reads it off the clip's own, so nothing
    else teaches the encoder to leave the voice out of what it reads, or the
    decoder to take the voice from z_s alone. The rendering is made without
    gradient: the decoder cannot learn to hide the clip's own voice in it.
    """
    swapped = torch.roll(z_s, shifts=z_s.shape[0] // 2, dims=0)
    with torch.no_grad():
        rendered = model.decoder(z_c, swapped, model.with_register(pitch, swapped))
    foreign = model.content_encoder(rendered).rsample()
    rebuilt = model.decoder(foreign, z_s, pitch)
    return -model.log_likelihood(xn, rebuilt, frames, band_bins).sum() / (xn.shape[0] * frames)


def speaker_consistency_loss(speaker_mean: torch.Tensor, speakers: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Clips of one speaker should get nearby speaker latents; a mean over the clips that have a partner.

    speaker_mean (B, Ds): the speaker posterior means; speakers (B,) labels.
    A supervised contrastive loss on cosine similarity: each clip must pick
    out the other clips of its speaker among all the batch's clips, as
    FHVAE's discriminative term asks each sequence-level latent to identify
    its own sequence. The ELBO alone never compares two clips, so nothing
    else pulls one talker's utterances together or pushes two talkers apart.
    """
    z = F.normalize(speaker_mean, dim=-1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, -torch.inf)
    positive = (speakers[:, None] == speakers[None, :]) & ~self_mask
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    has = positive.any(1)
    if not bool(has.any()):
        return speaker_mean.sum() * 0.0
    per_clip = -(log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1).clamp(min=1))
    return per_clip[has].mean()


class ELBO(nn.Module):
    """The objective as a module: forward(mel) -> named terms (see `elbo_terms`).

    The VAE is a submodule, so `ELBO(vae).parameters()` are the model's and
    DistributedDataParallel(ELBO(vae)) synchronises them.
    """

    def __init__(
        self,
        model: VAE,
        n_samples: int = 1,
        free_bits: float = 0.0,
        content_warp: float = 0.0,
        content_cycle: bool = False,
        baseline: MovingAverageBaseline | None = None,
        channel_speaker: bool = True,
        voice_cycle: bool = False,
    ) -> None:
        super().__init__()
        self.voice_cycle = voice_cycle
        self.model = model
        self.n_samples = n_samples
        self.free_bits = free_bits
        self.content_warp = content_warp
        self.content_cycle = content_cycle
        self.baseline = baseline
        self.channel_speaker = channel_speaker

    def forward(
        self,
        mel: torch.Tensor,
        encoder_input: torch.Tensor | None = None,
        band_bins: torch.Tensor | None = None,
        speakers: torch.Tensor | None = None,
        critic: Critic | None = None,
        phones: tuple[Phonetic, PhoneBatch] | None = None,
        pitch: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """mel (B, n_mels, F) -> scalar terms in nats per frame (the optional inputs: see `elbo_terms`)."""
        return elbo_terms(
            self.model,
            mel,
            self.n_samples,
            self.free_bits,
            self.baseline,
            self.content_warp,
            self.content_cycle,
            encoder_input,
            band_bins,
            speakers,
            self.channel_speaker,
            critic,
            phones,
            pitch,
            self.voice_cycle,
        )
