"""Content normalisation: move a source clip's content latents to the target voice's statistics.

    wav = vc.convert(src, target="new_voice", content_norm=1.0)   # a named voice, or reference clips

The content latents are meant to hold only what is said, but on a voice the
model never heard they also carry the source voice: an adapted model renders
the target's own clips at a judge similarity of 0.86 and other voices' clips
at 0.76 (README, "Where an adapted clone loses its likeness"). Part of that
lies in each channel's level and spread over the clip, which a clip-level
normalisation can move. Per content channel k, with mean m and standard
deviation s over speech frames:

    z'_k = z_k + C * ((z_k - m_src) / s_src * s_tgt + m_tgt - z_k)

C (`content_norm`, 0..1) is how far to go: 0 is plain conversion, 1 gives
the source's latents the target's mean and spread (the instance
normalisation of AdaIN-style converters, applied to the latents). A named
voice's statistics are stored in the vector file (`voicevae vectors` pools
its clips' speech frames, `adapt` its cleaned recordings); reference clips
give those of their own frames (their matching set, matching.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from .model import VAE

# Frames whose mean log-mel (natural log) is this far below the clip's loudest
# frame (40 dB) or more are silence: they would pull every channel toward the
# encoder's silence code, and clips differ in how much silence they hold.
SPEECH_RANGE = 4.6


# A channel whose spread over the source's speech is tiny would be stretched
# without limit, and the silence frames (outside the statistics) with it.
MAX_SCALE = 4.0


def speech_frames(mel: torch.Tensor) -> torch.Tensor:
    """(n_mels, F) log-mel -> (F,) bool: the frames within SPEECH_RANGE of the loudest."""
    level = mel.mean(dim=0)
    return level > level.max() - SPEECH_RANGE


def speech_latents(mel: torch.Tensor, latent_frames: int, downsample: int) -> torch.Tensor:
    """(n_mels, F) log-mel -> (L,) bool: the content latent frames (downsample mel frames each) that cover speech.

    A latent frame is speech when any of its mel frames is; the encoder's
    right padding (L * downsample >= F) is not.
    """
    speech = F.pad(speech_frames(mel), (0, latent_frames * downsample - mel.shape[-1]))
    return rearrange(speech, "(l d) -> l d", d=downsample).any(dim=1)


@torch.inference_mode()
def speech_content(model: VAE, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One clip's log-mel (n_mels, F) -> its content latent means (Dc, L), on the model's device, and (L,) bool:
    which of them cover speech (`speech_latents`). Encoded on its own: the content encoder normalises per clip."""
    z_c = model.content_means(mel.unsqueeze(0).to(model.mel_mean.device))[0]
    return z_c, speech_latents(mel, z_c.shape[-1], model.config.downsample)


@dataclass
class ContentStats:
    """Per content channel, the mean and standard deviation (Dc,) over speech frames."""

    mean: torch.Tensor
    sd: torch.Tensor

    @classmethod
    def of_latents(cls, pieces: list[tuple[torch.Tensor, torch.Tensor]]) -> ContentStats:
        """From (content latents (Dc, L_i), speech (L_i,) bool) pairs, pooled over their speech frames."""
        pooled = torch.cat([z_c[:, speech.to(z_c.device)] for z_c, speech in pieces], dim=1)
        if pooled.shape[1] < 2:
            raise ValueError("content_norm: the clips hold fewer than 2 frames of speech")
        return cls(pooled.mean(dim=1), pooled.std(dim=1).clamp_min(1e-4))

    def cpu(self) -> ContentStats:
        """A copy on the CPU, where a vector file keeps everything."""
        return ContentStats(self.mean.cpu(), self.sd.cpu())

    @classmethod
    @torch.inference_mode()
    def of_mels(cls, model: VAE, mels: list[torch.Tensor]) -> ContentStats:
        """From log-mels (n_mels, F_i), each encoded on its own (the content encoder normalises per clip)."""
        return cls.of_latents([speech_content(model, mel) for mel in mels])


def content_affine(source: ContentStats, target: ContentStats, amount: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each (Dc,), that move latents `amount` of the way from the source's statistics to the target's.

    z + C * ((z - m_s) / s_s * s_t + m_t - z) = z * (1 - C + C * s_t / s_s) + C * (m_t - m_s * s_t / s_s)
    """
    ratio = (target.sd / source.sd).clamp(1 / MAX_SCALE, MAX_SCALE)
    return 1 - amount + amount * ratio, amount * (target.mean - source.mean * ratio)
