"""Mel-spectrogram front end: audio (B, T) -> log-mel (B, n_mels, F).

The analysis reproduces the recipe the pretrained HiFi-GAN was trained on
(jik876/hifi-gan meldataset): reflect padding of (n_fft - hop) / 2 on both
sides, no centring, magnitude (not power) spectrum, Slaney mel filterbank and
natural log with a floor. With it F = T // hop_length, so frame f covers
samples [f * hop, (f + 1) * hop) and a vocoder maps F frames back to F * hop
samples.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from .config import MelConfig


@functools.lru_cache(maxsize=8)
def _filter_tops(n_fft: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> tuple[float, ...]:
    """The top frequency (Hz) each mel filter reads, bottom bin first."""
    fbanks = torchaudio.functional.melscale_fbanks(
        n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney"
    )
    freqs = torch.linspace(0, sample_rate / 2, fbanks.shape[0])
    return tuple(float(freqs[col > 0].max()) for col in fbanks.T)


def bins_below(config: MelConfig, bandwidth_hz: float) -> int:
    """How many mel bins (from the bottom) lie wholly below `bandwidth_hz`.

    A bin counts when the upper edge of its triangular filter is at or under
    the bandwidth: an 8 kHz telephone clip (bandwidth 4000) has real energy
    only there, and the bins above hold the silence floor, not its voice.
    The filter edges are computed once per mel setting (this runs per clip
    in every training batch with a band-limit augmentation).
    """
    tops = _filter_tops(config.n_fft, config.f_min, config.f_max, config.n_mels, config.sample_rate)
    return sum(top <= bandwidth_hz for top in tops)


class MelFrontend(nn.Module):
    """Log-mel analysis as a module, so it moves with `.to(device)`.

    forward: audio (B, T) or (T,) float -> log-mel (B, n_mels, F), F = T // hop.
    """

    def __init__(self, config: MelConfig | None = None, **overrides) -> None:
        super().__init__()
        if config is None:
            config = MelConfig(**overrides)
        elif overrides:
            raise TypeError("pass either a MelConfig or keyword settings, not both")
        config.validate()
        self.config = config
        # torchaudio holds the window and filterbank as buffers: no global cache.
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            power=1.0,
            center=False,
            norm="slaney",
            mel_scale="slaney",
        )
        self.pad = (config.n_fft - config.hop_length) // 2

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames F produced for T samples."""
        padded = num_samples + 2 * self.pad
        return max(0, (padded - self.config.n_fft) // self.config.hop_length + 1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        squeeze = audio.ndim == 1
        if squeeze:
            audio = audio.unsqueeze(0)
        mel = self.mel(self._padded(audio, "MelFrontend"))
        logmel = torch.log(torch.clamp(mel, min=self.config.log_floor))
        return logmel[0] if squeeze else logmel

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """Complex STFT with the log-mel's framing: audio (B, T) -> (B, n_fft/2+1, F).

        Frame f of this spectrum is the one that mel frame f summarises, so a
        vocoder that predicts a spectrum per mel frame can be compared with it
        bin by bin (its phase included).
        """
        x = self._padded(audio, "MelFrontend.stft")
        c = self.config
        window = self.mel.spectrogram.window
        return torch.stft(x, c.n_fft, c.hop_length, c.win_length, window, center=False, return_complex=True)

    def _padded(self, audio: torch.Tensor, caller: str) -> torch.Tensor:
        """audio (B, T) -> float32 (B, T + 2 * pad), reflect-padded: the framing of every analysis here."""
        if audio.ndim != 2:
            raise ValueError(f"{caller} expects audio (B, T), got shape {tuple(audio.shape)}")
        if audio.shape[-1] <= self.pad:
            raise ValueError(f"audio of {audio.shape[-1]} samples is too short for n_fft={self.config.n_fft}")
        # Reflect padding needs float32 even under autocast.
        return F.pad(audio.float().unsqueeze(1), (self.pad, self.pad), mode="reflect").squeeze(1)

    def chunked(self, audio: torch.Tensor, chunk_frames: int = 4096) -> torch.Tensor:
        """Same result as forward for (T,) audio, computed `chunk_frames` frames at a time.

        Only one chunk's spectrogram is in memory at once, so a long recording
        costs little more than its log-mel. Returns (n_mels, F).
        """
        if audio.ndim != 1:
            raise ValueError(f"chunked expects (T,) audio, got shape {tuple(audio.shape)}")
        frames = self.num_frames(audio.shape[-1])
        if frames <= chunk_frames:
            return self(audio)
        hop, n_fft = self.config.hop_length, self.config.n_fft
        padded = F.pad(audio.float()[None, None], (self.pad, self.pad), mode="reflect")[0, 0]
        pieces = []
        for start in range(0, frames, chunk_frames):
            stop = min(frames, start + chunk_frames)
            # Frame f reads padded samples [f * hop, f * hop + n_fft).
            mel = self.mel(padded[start * hop : (stop - 1) * hop + n_fft])
            pieces.append(torch.log(torch.clamp(mel, min=self.config.log_floor)))
        return torch.cat(pieces, dim=-1)

    @property
    def floor(self) -> float:
        """The log-mel value of silence."""
        return float(torch.log(torch.tensor(self.config.log_floor)))
