"""The vocoder contract: log-mel (B, n_mels, F) -> audio (B, F * hop).

Every vocoder is an `nn.Module` that carries the `MelConfig` it was built for,
so a caller can check that the features it feeds were made the same way
(`check_compatible`). `forward` is the differentiable path used in training;
`vocode` is the inference path: it validates its input and processes long
inputs in overlapping chunks with a crossfade, so memory stays bounded however
long the clip is.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from ..config import MelConfig
from ..model import VAE


class IncompatibleMelError(ValueError):
    """A vocoder was asked to invert mels analysed with other settings."""


def check_compatible(vocoder_mel: MelConfig, model_mel: MelConfig) -> None:
    """Raise `IncompatibleMelError` unless the two analyses are the same.

    The message names every differing setting with both values, because a
    vocoder fed mels of another rate or filterbank produces plausible-looking
    garbage rather than an error.
    """
    diffs = []
    for f in dataclasses.fields(MelConfig):
        a, b = getattr(vocoder_mel, f.name), getattr(model_mel, f.name)
        same = math.isclose(a, b, rel_tol=1e-9) if isinstance(a, float) or isinstance(b, float) else a == b
        if not same:
            diffs.append(f"{f.name}: vocoder {a!r}, model {b!r}")
    if diffs:
        raise IncompatibleMelError("vocoder and model mel settings differ: " + "; ".join(diffs))


class Vocoder(nn.Module):
    """Base class of all vocoders.

    Subclasses set `self.mel_config` and implement `forward`:
    logmel (B, n_mels, F) -> audio (B, F * hop_length).
    """

    mel_config: MelConfig
    # Inference chunking in mel frames. 512 frames are ~6 s at 22.05 kHz; the
    # overlap must cover the receptive field where chunk edges change the output.
    chunk_frames: int = 512
    overlap_frames: int = 32
    # Silence frames a batch appends after each clip (VoiceConverter.vocode_many)
    # so that a clip's end does not depend on what else is in the batch; 0: none.
    batch_tail_frames: int = 0

    def __init__(self, mel_config: MelConfig) -> None:
        super().__init__()
        mel_config.validate()
        self.mel_config = mel_config

    @property
    def hop_length(self) -> int:
        return self.mel_config.hop_length

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def device(self) -> torch.device:
        first = next(itertools.chain(self.parameters(), self.buffers()), None)
        return first.device if first is not None else torch.device("cpu")

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_input(self, logmel: torch.Tensor) -> None:
        """Raise ValueError unless `logmel` is a finite (B, n_mels, F) or (n_mels, F) tensor."""
        if not isinstance(logmel, torch.Tensor):
            raise ValueError(f"vocode expects a torch.Tensor log-mel, got {type(logmel).__name__}")
        n_mels = self.mel_config.n_mels
        if logmel.ndim not in (2, 3) or logmel.shape[-2] != n_mels or logmel.shape[-1] < 1:
            raise ValueError(
                f"vocode expects log-mel of shape (B, {n_mels}, F) or ({n_mels}, F) with F >= 1, got {tuple(logmel.shape)}"
            )
        if not logmel.is_floating_point():
            raise ValueError(f"vocode expects a floating-point log-mel, got {logmel.dtype}")
        if not torch.isfinite(logmel).all():
            raise ValueError("vocode: log-mel contains NaN or infinite values")

    def vocode(
        self,
        logmel: torch.Tensor,
        chunk_frames: int | None = None,
        overlap_frames: int | None = None,
    ) -> torch.Tensor:
        """Audio for a log-mel, in chunks when it is long.

        logmel: (B, n_mels, F) or (n_mels, F). Returns (B, F * hop) or (F * hop,)
        float32 in [-1, 1] on the vocoder's device.
        """
        self.check_input(logmel)
        chunk = self.chunk_frames if chunk_frames is None else chunk_frames
        overlap = self.overlap_frames if overlap_frames is None else overlap_frames
        if not 0 <= overlap < chunk:
            raise ValueError(f"need 0 <= overlap_frames < chunk_frames, got {overlap} and {chunk}")
        squeeze = logmel.ndim == 2
        x = logmel.unsqueeze(0) if squeeze else logmel
        x = x.to(self.device, torch.float32)
        with torch.inference_mode():
            audio = self._chunked(x, chunk, overlap).clamp_(-1.0, 1.0)
        return audio[0] if squeeze else audio

    def _chunked(self, x: torch.Tensor, chunk: int, overlap: int) -> torch.Tensor:
        """Run `forward` over frame windows of `chunk` that overlap by `overlap` frames.

        Near its edges a chunk's output is wrong (its convolutions saw zero
        padding, not the neighbouring frames), so of each overlap the outer
        quarters are dropped and the middle half is a linear crossfade from the
        earlier chunk to the later one. Where the edge effects reach less than a
        quarter of the overlap, the result equals the unchunked output.
        """
        n_frames = x.shape[-1]
        hop = self.hop_length
        if n_frames <= chunk:
            return self._fit(self(x), n_frames * hop)
        out = torch.zeros(x.shape[0], n_frames * hop, device=x.device)
        step = chunk - overlap
        skip = overlap // 4
        fade_len = (overlap - 2 * skip) * hop
        fade_in = (torch.arange(fade_len, device=x.device) + 0.5) / max(fade_len, 1)
        for start in range(0, n_frames - overlap, step):
            stop = min(start + chunk, n_frames)
            y = self._fit(self(x[..., start:stop]), (stop - start) * hop)
            if start == 0:
                out[:, : y.shape[-1]] = y
                continue
            a, b, e = (start + skip) * hop, (start + skip) * hop + fade_len, stop * hop
            y = y[:, skip * hop :]
            out[:, a:b] = out[:, a:b] * (1 - fade_in) + y[:, :fade_len] * fade_in
            out[:, b:e] = y[:, fade_len:]
        return out

    @staticmethod
    def _fit(audio: torch.Tensor, length: int) -> torch.Tensor:
        """(B, 1, T') or (B, T') -> (B, length): drop a channel axis, trim or zero-pad the end."""
        if audio.ndim == 3:
            audio = rearrange(audio, "b 1 t -> b t")
        if audio.shape[-1] >= length:
            return audio[..., :length]
        return nn.functional.pad(audio, (0, length - audio.shape[-1]))


MelTransform = Callable[[torch.Tensor], torch.Tensor]


def vae_mel_transform(path: str | Path, device: torch.device, mel_config: MelConfig) -> MelTransform:
    """logmel (B, n_mels, F) -> the VAE's reconstruction of it, from a VAE checkpoint.

    What a vocoder hears in conversion: fine-tuning on it (train-vocoder
    --vae-checkpoint) and scoring on it (eval-vocoder --vae) use this one.
    """
    vae = VAE.load(path).to(device)
    check_compatible(mel_config, vae.mel_config)

    @torch.no_grad()
    def transform(logmel: torch.Tensor) -> torch.Tensor:
        return vae.reconstruct(logmel.to(device))

    return transform
