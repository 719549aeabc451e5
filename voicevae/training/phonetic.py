"""The content path's phonetic term: the content latent must spell the transcript's phones (CTC).

The ELBO asks z_c only for what helps reconstruct the clip, and on voices
it never heard the decoded speech loses words (README, "Voices it has never
heard": few-shot WER 0.79 against the source's 0.19). The voice warp and
the channel keep the voice out of z_c; nothing asks it to keep the phones.
This term does, with the transcripts most training clips have:

    phone/ctc = CTC( head(z_c), phones(text) ) / mel frames

z_c is a sample of q(z_c | x~) for the whole clip x seen as the content
encoder sees the ELBO's crops (voice warp, channel), and the head is small
(one kernel-3 convolution, then per-frame logits), so the phones must be
readable from z_c itself, through the same noise the decoder gets. CTC,
because a transcript has no alignment. Phones come from espeak-ng
(phonemes.py) in the clip's language.

The head lives beside the model, as the adversarial stage's critic does:
its own seeded initialisation and Adam, and its own generator for every
random draw of a step (which clips, warp, channel, latent noise), so a run
with the term sees the same batches and noise as one without it. The term
is computed inside the objective's forward, so under
DistributedDataParallel the content encoder's gradients from it are
reduced with the rest; the head's own are averaged by hand (`step`). Its
state is part of the training checkpoint (the generator per rank); the
model file does not change. The clips see the content warp and the channel
but not `speaker_warp`, which changes the voice of input and target alike
and so is no business of the content path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..augment import channel, random_warp
from ..config import ChannelConfig, MelConfig, PhoneticConfig
from ..corpora import read_manifest
from ..data import MelCorpus
from ..model import VAE
from ..phonemes import phone_symbols, phonemize_all
from .state import average_gradients


class PhoneHead(nn.Module):
    """z_c (B, content_dim, L) -> phone logits (B, n_phones + 1, L); index 0 is CTC's blank."""

    def __init__(self, content_dim: int, hidden: int, n_phones: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(content_dim, hidden, 3, padding=1), nn.GELU(), nn.Conv1d(hidden, n_phones + 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@dataclass
class PhoneBatch:
    """One step's clips: what the content encoder sees, the latent noise, and the phone targets.

    inputs[i] (1, n_mels, F_i) log-mels after warp and channel; noise[i]
    (1, content_dim, L_i) standard normal draws for z_c = mu + std * noise;
    targets[i] (U_i,) phone indices (1-based: 0 is the blank).
    """

    inputs: list[torch.Tensor]
    noise: list[torch.Tensor]
    targets: list[torch.Tensor]


class Phonetic:
    """The phone inventory, the head and its optimiser, and the clips that have phones.

    corpus: the training split `split` of `manifest` as loaded (its paths
    name the manifest rows, read again for each clip's language).
    seed: the head's initialisation (the same on every rank); clip_seed:
    the generator that picks clips and seeds their random draws (one per rank).
    inventory: the phones of a checkpoint, when continuing one (the head's
    output size depends on it); otherwise built from the corpus.
    drop_unknown: leave phones outside the inventory out of the targets
    instead of refusing (to score another split with a trained head, as
    recipes/recorded/phone_error_rate.py does; never for training).
    """

    def __init__(
        self,
        cfg: PhoneticConfig,
        corpus: MelCorpus,
        manifest: str | Path,
        split: str | None,
        model: VAE,
        cache_dir: str | Path,
        seed: int = 0,
        clip_seed: int = 0,
        inventory: list[str] | None = None,
        progress: bool = True,
        drop_unknown: bool = False,
    ) -> None:
        self.cfg = cfg
        rows = {str(u.path): u.labels.get("language", "") or cfg.default_language for u in read_manifest(manifest, split)}
        missing = [p for p in corpus.paths if p not in rows]
        if missing:
            raise ValueError(f"{manifest}: {missing[0]} is in the mel cache but not in split {split!r}; rebuild the cache")
        languages = [rows[p] for p in corpus.paths]
        wanted = [(lang, t) for lang, t in zip(languages, corpus.texts) if t.strip()]
        ipa = phonemize_all(wanted, Path(cache_dir) / "phonemes.json", progress=progress)
        phones = {key: phone_symbols(v) for key, v in ipa.items()}
        self.inventory = inventory if inventory is not None else sorted({s for p in phones.values() for s in p})
        index = {s: i + 1 for i, s in enumerate(self.inventory)}
        self.clips: list[int] = []  # corpus indices with phones that CTC can align in the latent frames
        self.targets: dict[int, torch.Tensor] = {}
        unknown: set[str] = set()
        for i, (lang, text) in enumerate(zip(languages, corpus.texts)):
            frames = corpus.mels[i].shape[-1]
            symbols = phones.get((lang, text), [])
            unknown.update(s for s in symbols if s not in index)
            seq = [index[s] for s in symbols if s in index]
            repeats = sum(a == b for a, b in zip(seq, seq[1:]))  # CTC puts a blank between repeated phones
            if seq and frames <= cfg.max_frames and len(seq) + repeats <= model.latent_frames(frames):
                self.clips.append(i)
                self.targets[i] = torch.tensor(seq)
        if unknown and not drop_unknown:
            # Only when continuing a checkpoint on another corpus: dropping phones would merge their neighbours.
            raise ValueError(
                f"{manifest}: phones {''.join(sorted(unknown))!r} are not in the checkpoint's inventory; "
                "the phonetic term's head cannot spell them (start the term afresh on this corpus)"
            )
        if not self.clips:
            raise ValueError(
                f"{manifest}: no training clip has a transcript espeak-ng can phonemise within "
                f"phonetic.max_frames={cfg.max_frames}; the phonetic term (lambdas.phone/ctc) needs some"
            )
        self.corpus = corpus
        device = model.mel_mean.device
        # fork_rng restores only the generators it names; manual_seed sets CUDA's too.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.head = PhoneHead(model.config.content_dim, cfg.hidden, len(self.inventory)).to(device)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(clip_seed)

    def next(self, content_warp: float, channel_cfg: ChannelConfig | None, mel_cfg: MelConfig, model: VAE) -> PhoneBatch:
        """Draw `clips` clips and everything random about them from the term's own generator.

        Every draw names the generator (no global seed is set, which on CUDA
        would reseed the device stream the ELBO's noise comes from).
        """
        g = self.generator
        picks = torch.randint(len(self.clips), (self.cfg.clips,), generator=g)
        device = model.mel_mean.device
        inputs, noise, targets = [], [], []
        for k in picks.tolist():
            i = self.clips[k]
            mel = self.corpus.mels[i].float().unsqueeze(0)  # on the CPU, where the generator draws
            if channel_cfg is not None:
                mel = channel(mel, channel_cfg, mel_cfg, model.floor, generator=g)
            mel = random_warp(mel, content_warp, generator=g)
            inputs.append(mel.to(device))
            latent_frames = model.latent_frames(mel.shape[-1])
            noise.append(torch.randn(1, model.config.content_dim, latent_frames, generator=g).to(device))
            targets.append(self.targets[i])
        return PhoneBatch(inputs, noise, targets)

    def term(self, model: VAE, batch: PhoneBatch) -> torch.Tensor:
        """phone/ctc: CTC of the head on sampled z_c, nats per mel frame of the batch's clips."""
        total = torch.zeros((), device=model.mel_mean.device)
        frames = 0
        for mel, eps, target in zip(batch.inputs, batch.noise, batch.targets):
            xn, n = model.prepare(mel)
            q = model.content_encoder(xn)
            z = q.mu + q.std * eps
            log_probs = rearrange(F.log_softmax(self.head(z).float(), dim=1), "b c l -> l b c")
            total = total + F.ctc_loss(
                log_probs,
                target.to(log_probs.device).unsqueeze(0),
                torch.tensor([log_probs.shape[0]]),
                torch.tensor([len(target)]),
                reduction="sum",
                zero_infinity=False,  # the clips kept can all be aligned: an infinite loss is a bug
            )
            frames += n
        return total / frames

    def step(self) -> None:
        """The head's optimiser step after the VAE's backward; under torchrun its gradients are averaged."""
        average_gradients(self.head.parameters())
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        """The head, its optimiser and the inventory, equal on every rank (the clip generator is per rank)."""
        return {
            "head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "inventory": list(self.inventory),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["inventory"]) != self.inventory:
            raise ValueError("the checkpoint's phone inventory differs from this one; build the term from the checkpoint's")
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the config's rate wins over the saved one
            group["lr"] = self.cfg.lr
