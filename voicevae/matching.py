"""Retrieval blending: pull a conversion's frames toward the target's own frames.

    matching = vc.matching_set(["ref1.wav", "ref2.wav"])     # or built by `voicevae adapt`
    wav = vc.convert(src, target="new_voice", retrieval=0.5)

A matching set (kNN-VC's term) holds, for every frame of the target's
recordings, a key in a content space and the frame's log-mel. Each frame of
a conversion is looked up among the keys (cosine similarity, k nearest) and
its log-mel is blended with the mean of the neighbours' log-mels:

    out[f] = (1 - R) * converted[f] + R * mean_{j in kNN(f)} target_mel[j]

R (`retrieval`) is RVC's index rate: 0 is plain conversion, 1 replaces every
frame by real target frames. The query is the *converted* output: it is
already in the target voice, so its frames are compared with the target's
like for like. The key space (`space`, stored with the set):

- "content": the content encoder's hidden features (VAE.content_features);
- "mfcc": cepstra of the log-mel (DCT coefficients 1..MFCC, c0 the level
  left out), mean-normalised per clip: the classic same-speaker phonetic
  features, which need no model.

`context` frames on each side are stacked onto every key, so a frame is
matched with its neighbourhood rather than alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchaudio
from einops import rearrange

from .checkpoint import load_checkpoint, save_checkpoint
from .model import VAE

KIND = "matching"
SPACES = ("content", "mfcc")
DEFAULT_SPACE = "content"  # what `adapt` and `matching_set` key a set in
MFCC = 20  # cepstral coefficients computed, c0 among them (dropped)


def parse_space(spec: str) -> tuple[str, int]:
    """'mfcc' -> ("mfcc", 0), 'content:2' -> ("content", 2): a key space and its context frames."""
    space, _, context = spec.partition(":")
    if space not in SPACES or not (context == "" or context.isdigit()):
        raise ValueError(f"matching space {spec!r}: expected one of {', '.join(SPACES)}, optionally :CONTEXT, e.g. mfcc:2")
    return space, int(context or 0)


def frame_keys(model: VAE, mel: torch.Tensor, space: str = DEFAULT_SPACE, context: int = 0) -> torch.Tensor:
    """Unit-norm keys of one clip's frames: log-mel (n_mels, F) -> (F, C)."""
    if space == "content":
        feats = model.content_features(mel[None].to(model.mel_mean.device))[0]  # (C, F)
    elif space == "mfcc":
        dct = torchaudio.functional.create_dct(MFCC, mel.shape[0], norm="ortho").to(mel)  # (n_mels, MFCC)
        cep = (dct.T @ mel)[1:]
        feats = cep - cep.mean(-1, keepdim=True)
    else:
        raise ValueError(f"matching space must be one of {', '.join(SPACES)}, got {space!r}")
    feats = F.normalize(feats, dim=0)
    if context:
        # (C, F) -> (C * (2 * context + 1), F): each frame with its neighbours, edges repeated.
        padded = F.pad(feats[None], (context, context), mode="replicate")[0]
        feats = rearrange(padded.unfold(-1, 2 * context + 1, 1), "c f w -> (w c) f")
    return F.normalize(rearrange(feats, "c f -> f c"), dim=-1)


@dataclass
class MatchingSet:
    """keys (N, C) unit-norm frame keys in `space` and mels (N, n_mels) of the target's frames.

    lengths: frames per clip, in order (sum N); keys are computed per clip.
    """

    keys: torch.Tensor
    mels: torch.Tensor
    space: str = DEFAULT_SPACE
    context: int = 0
    lengths: tuple[int, ...] = ()

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @classmethod
    @torch.inference_mode()
    def from_mels(cls, model: VAE, mels: list[torch.Tensor], space: str = DEFAULT_SPACE, context: int = 0) -> MatchingSet:
        """From log-mels (n_mels, F_i) of the target's clips."""
        keys = [frame_keys(model, mel, space, context).cpu() for mel in mels]
        frames = [rearrange(mel, "m f -> f m").cpu() for mel in mels]
        return cls(torch.cat(keys), torch.cat(frames), space, context, tuple(m.shape[-1] for m in mels))

    def respace(self, model: VAE, space: str, context: int = 0) -> MatchingSet:
        """The same frames keyed in another space (or context); itself when that is its own."""
        if (space, context) == (self.space, self.context):
            return self
        return MatchingSet.from_mels(model, self.clip_mels(), space, context)

    def clip_mels(self) -> list[torch.Tensor]:
        """The target's clips again: log-mels (n_mels, F_i), one per clip (one in all for a set without lengths)."""
        return [rearrange(m, "f m -> m f") for m in self.mels.split(list(self.lengths or (len(self),)))]

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
            query = frame_keys(model, piece, self.space, self.context)
            nearest = (query @ keys.T).topk(k, dim=-1).indices  # (f, k)
            matched = rearrange(mels[nearest].mean(1), "f m -> m f")
            out[:, start:stop] = (1 - ratio) * piece + ratio * matched
        return out

    def save(self, path: str | Path) -> Path:
        payload = {"keys": self.keys, "mels": self.mels, "space": self.space, "context": self.context}
        return save_checkpoint(path, KIND, {**payload, "lengths": list(self.lengths)})

    @classmethod
    def load(cls, path: str | Path) -> MatchingSet:
        data = load_checkpoint(path, KIND)
        # Sets written before the space was a choice hold content keys without context.
        space, context = data.get("space", "content"), int(data.get("context", 0))
        return cls(data["keys"], data["mels"], space, context, tuple(data.get("lengths", ())))
