"""Griffin-Lim: phase retrieval from the mel magnitudes, no training needed.

The log-mel is exponentiated, mapped back to a linear-frequency magnitude with
the pseudo-inverse of the front end's own filterbank (clamped at zero, since
magnitudes cannot be negative), and its phase is found by Griffin-Lim. It
works with any MelConfig and is the quality floor the learned vocoders must
beat.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF
from einops import einsum

from ..config import MelConfig
from ..features import MelFrontend
from .base import Vocoder


class GriffinLimVocoder(Vocoder):
    """logmel (B, n_mels, F) -> audio (B, F * hop) by mel pseudo-inversion + Griffin-Lim."""

    # Griffin-Lim mixes phase across ~n_fft/hop frames per iteration, so chunks
    # need a wider overlap than the neural vocoders to agree where they meet.
    overlap_frames = 64
    inverse_fb: torch.Tensor  # buffers
    window: torch.Tensor

    def __init__(
        self, mel_config: MelConfig | None = None, n_iter: int = 32, momentum: float = 0.99, rand_init: bool = False
    ) -> None:
        mel_config = mel_config or MelConfig()
        super().__init__(mel_config)
        if n_iter < 1:
            raise ValueError(f"Griffin-Lim n_iter must be >= 1, got {n_iter}")
        self.n_iter = n_iter
        self.momentum = momentum
        # A fixed (zero-phase) start makes the output a function of the input,
        # which chunked processing and tests rely on.
        self.rand_init = rand_init
        # The same filterbank the front end analyses with, (n_freqs, n_mels);
        # its pseudo-inverse is (n_mels, n_freqs).
        fb = MelFrontend(mel_config).mel.mel_scale.fb
        self.register_buffer("inverse_fb", torch.linalg.pinv(fb), persistent=False)
        self.register_buffer("window", torch.hann_window(mel_config.win_length), persistent=False)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        """logmel (B, n_mels, F) -> audio (B, F * hop)."""
        cfg = self.mel_config
        n_frames = logmel.shape[-1]
        mel = torch.exp(logmel.float())
        magnitude = einsum(self.inverse_fb, mel, "m k, b m t -> b k t").clamp_min(0.0)
        # torchaudio's Griffin-Lim centres frame t on sample t * hop; the front end
        # (reflect pad (n_fft - hop) / 2, no centring) centres it on t * hop + hop / 2.
        shift = cfg.hop_length // 2
        audio = AF.griffinlim(
            magnitude,
            self.window,
            cfg.n_fft,
            cfg.hop_length,
            cfg.win_length,
            1.0,
            self.n_iter,
            self.momentum,
            n_frames * cfg.hop_length - shift,
            self.rand_init,
        )
        return torch.nn.functional.pad(audio, (shift, 0))
