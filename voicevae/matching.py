"""Retrieval blending: pull a conversion's frames toward the target's own frames.

    matching = vc.matching_set(["ref1.wav", "ref2.wav"])     # or built by `voicevae adapt`
    wav = vc.convert(src, target="new_voice", retrieval=0.5)

A matching set (kNN-VC's term) holds, for every frame of the target's
recordings, a key in a content space and the frame's log-mel. Each frame of
a conversion is looked up among the keys (cosine similarity, k nearest) and
its log-mel is blended with the mean of the neighbours' log-mels:

    out[f] = (1 - R) * converted[f] + R * mean_{j in kNN(f)} target_mel[j]

R (`retrieval`) is RVC's index rate: 0 is plain conversion, 1 replaces every
frame by real target frames. Keys are the content encoder's hidden features
(VAE.content_features) of the *converted* output: it is already in the
target voice, so its frames are compared with the target's like for like.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

from .checkpoint import load_checkpoint, save_checkpoint
from .model import VAE

KIND = "matching"


@dataclass
class MatchingSet:
    """keys (N, C) unit-norm content features and mels (N, n_mels) of the target's frames."""

    keys: torch.Tensor
    mels: torch.Tensor

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @classmethod
    @torch.inference_mode()
    def from_mels(cls, model: VAE, mels: list[torch.Tensor]) -> MatchingSet:
        """From log-mels (n_mels, F_i) of the target's clips."""
        keys, frames = [], []
        for mel in mels:
            feats = model.content_features(mel[None].to(model.mel_mean.device))[0]  # (C, F)
            keys.append(F.normalize(rearrange(feats, "c f -> f c"), dim=-1).cpu())
            frames.append(rearrange(mel, "m f -> f m").cpu())
        return cls(torch.cat(keys), torch.cat(frames))

    @torch.inference_mode()
    def blend(self, model: VAE, converted: torch.Tensor, ratio: float, k: int = 4, chunk: int = 2048) -> torch.Tensor:
        """converted (n_mels, F) -> (n_mels, F) with each frame blended toward its k nearest target frames."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"retrieval must be in [0, 1], got {ratio}")
        if ratio == 0.0:
            return converted
        device = converted.device
        keys, mels = self.keys.to(device), self.mels.to(device)
        k = min(k, len(self))
        out = torch.empty_like(converted)
        # Chunks bound the (F, N) similarity matrix for long inputs; a short
        # last chunk joins the one before, since the content encoder's instance
        # normalisation would give a few frames poor keys.
        frames = converted.shape[-1]
        starts = list(range(0, frames, chunk))
        if len(starts) > 1 and frames - starts[-1] < chunk // 4:
            starts.pop()
        for i, start in enumerate(starts):
            stop = starts[i + 1] if i + 1 < len(starts) else frames
            piece = converted[:, start:stop]
            query = F.normalize(rearrange(model.content_features(piece[None])[0], "c f -> f c"), dim=-1)
            nearest = (query @ keys.T).topk(k, dim=-1).indices  # (f, k)
            matched = rearrange(mels[nearest].mean(1), "f m -> m f")
            out[:, start:stop] = (1 - ratio) * piece + ratio * matched
        return out

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, KIND, {"keys": self.keys, "mels": self.mels})

    @classmethod
    def load(cls, path: str | Path) -> MatchingSet:
        data = load_checkpoint(path, KIND)
        return cls(data["keys"], data["mels"])
