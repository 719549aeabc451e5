"""Vocoders: log-mel (B, n_mels, F) -> audio (B, F * hop).

vocoder = load_vocoder("hifigan")           # pretrained HiFi-GAN (default)
vocoder = load_vocoder("griffinlim")        # no weights, any MelConfig
vocoder = load_vocoder("fast")              # the shipped Vocos-style model (recipes/vocoder)
vocoder = load_vocoder("runs/vocoder/ckpt-0004000.pt")
check_compatible(vocoder.mel_config, vae.mel_config)
audio = vocoder.vocode(logmel)
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_checkpoint
from ..config import MelConfig, VocosConfig, from_dict
from .base import IncompatibleMelError, Vocoder, check_compatible
from .griffinlim import GriffinLimVocoder
from .hifigan import HiFiGANVocoder
from .vocos import VocosVocoder

# The Vocos-style vocoder trained on the synthetic corpus, shipped with the package.
FAST_ASSET = Path(__file__).resolve().parent.parent / "assets" / "vocoder_fast.pt"
NAMES = ("hifigan", "griffinlim", "fast")

__all__ = [
    "FAST_ASSET",
    "GriffinLimVocoder",
    "HiFiGANVocoder",
    "IncompatibleMelError",
    "Vocoder",
    "VocosConfig",
    "VocosVocoder",
    "check_compatible",
    "load_vocoder",
    "load_vocos_checkpoint",
]


def load_vocos_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> VocosVocoder:
    """A trained Vocos-style vocoder from a checkpoint of kind "vocoder" (training or exported)."""
    data = load_checkpoint(path, "vocoder", map_location=device)
    config = data.get("config")
    if not isinstance(config, dict) or "mel" not in config or "model" not in config:
        raise CheckpointError(f"{path}: vocoder checkpoint lacks its mel/model config")
    mel = from_dict(MelConfig, config["mel"], f"{path}: config.mel")
    arch = from_dict(VocosConfig, config["model"], f"{path}: config.model")
    vocoder = VocosVocoder(mel, arch)
    try:
        # Training checkpoints that keep a moving average are scored and shipped by it.
        vocoder.load_state_dict(data.get("ema", data["model"]))
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the stored config ({e})") from e
    return vocoder.to(device).eval()


def load_vocoder(name_or_path: str | Path = "hifigan", device: str | torch.device = "cpu") -> Vocoder:
    """A ready-to-use vocoder in eval mode: "hifigan", "griffinlim", "fast" or a checkpoint path."""
    name = str(name_or_path)
    if name == "hifigan":
        return HiFiGANVocoder().to(device).eval()
    if name == "griffinlim":
        return GriffinLimVocoder().to(device).eval()
    if name == "fast":
        if not FAST_ASSET.is_file():
            raise CheckpointError(f"the fast vocoder is not shipped in this install ({FAST_ASSET} is missing)")
        return load_vocos_checkpoint(FAST_ASSET, device)
    path = Path(name)
    if not path.is_file():
        raise CheckpointError(f"unknown vocoder {name!r}: not one of {', '.join(NAMES)} and no such file")
    return load_vocos_checkpoint(path, device)
