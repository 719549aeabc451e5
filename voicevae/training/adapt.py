"""`voicevae adapt`: fine-tune a trained VAE to one new speaker's recordings.

Zero-shot cloning averages the speaker encoder's latents of the reference
clips; for a voice unlike the training voices that lands where the decoder
renders some other voice. Adaptation instead fits the voice:

- the new speaker's vector z_new (Ds,) is a free parameter, started at the
  mean encoder latent of the clips and fitted as a MAP estimate under the
  prior N(0, I) ("prior/speaker");
- the decoder is fine-tuned to render the clips' own content with z_new
  ("rec/nll", the ELBO's reconstruction term with the content encoder's
  samples); with `content_warp` the content is read from a voice-warped
  copy of each crop, as in training, so the decoder is fitted on content
  that sounds like other voices too;
- both encoders stay frozen, so content is read as before and every source
  converts as before;
- every other voice keeps its sound: the decoder, fed the same content with
  each known speaker vector (and draws from the aggregated posterior), is
  held to the frozen decoder's output ("preserve/voices").
- "cycle/voices" (on by default): the clips' content is also read back off the frozen
  model's rendering of them in those other voices, and the decoder must
  rebuild the clips from it in the new voice. Content read from speech in
  another voice carries some of that voice (README, "Where an adapted
  clone loses its likeness"), and here the answer to it is known: the
  target's own recording.
- "rec/prematched" (off by default; measured nothing, README): each crop is
  also rebuilt from its content latents spliced out of the voice's other
  clips (`ContentBank`, kNN-VC's prematching), the input a conversion that
  matches content to the target's frames would give.

- a model that reads the source's intonation (`model.pitch_input`) is fed
  each clip's own; with a harmonic source the new voice's register is
  learnt too ("pitch/register"), since a conversion to it reads its register
  from z_new.

The adapted model is written as a model folder (model.pt + vectors.pt with
the new name, plus its matching set and F0 statistics) that `voicevae.load`,
`convert --model` and the demo's model picker read.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange, repeat
from tqdm import tqdm

from ..augment import random_warp
from ..config import AdaptConfig, ConfigError, adapt_config, to_dict
from ..content_stats import ContentStats, speech_content, speech_latents
from ..features import MelFrontend
from ..matching import MatchingSet
from ..model import DEFAULT_MODEL, VAE
from ..pitch import f0_stats, intonation
from ..recordings import RecordingSettings, Utterance, prepare_recordings, total_seconds
from ..vectors import LabelStats, VectorSet, model_fingerprint
from .elbo import content_read_back_loss, register_loss
from .state import Deadline, check_max_minutes, weighted_loss


@dataclass
class Adapted:
    """The result: the fine-tuned model, its vector file, and the voice's matching set."""

    model: VAE
    vectors: VectorSet
    name: str
    matching: MatchingSet  # the cleaned utterances' frames, for retrieval
    utterances: list[Utterance]
    seconds: float
    log: list[dict[str, float]]


def random_segments(
    mels: list[torch.Tensor],
    frames: int,
    batch: int,
    floor: float,
    generator: torch.Generator,
    pitch: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """(batch, n_mels, frames) random crops of the clips, weighted by length; short clips padded with silence.

    pitch: each clip's intonation (3, F_i), cropped where its log-mel is
    (zeros, unvoiced, in the padding) into (batch, 3, frames); else None.
    Also returns which clip each crop is from.
    """
    lengths = torch.tensor([m.shape[-1] for m in mels], dtype=torch.float)
    picks = torch.multinomial(lengths, batch, replacement=True, generator=generator).tolist()
    out = torch.full((batch, mels[0].shape[0], frames), floor)
    contours = None if pitch is None else torch.zeros((batch, pitch[0].shape[0], frames))
    for i, k in enumerate(picks):
        m = mels[k]
        start = int(torch.randint(max(1, m.shape[-1] - frames + 1), (1,), generator=generator))
        piece = m[:, start : start + frames]
        out[i, :, : piece.shape[-1]] = piece
        if contours is not None and pitch is not None:
            contours[i, :, : piece.shape[-1]] = pitch[k][:, start : start + frames]
    return out, contours, picks


PREMATCH_K = 4  # neighbours averaged by "rec/prematched", as kNN-VC's k


@dataclass
class ContentBank:
    """The content latent means of a voice's speech frames, and which clip each is from: (N, Dc), (N,)."""

    frames: torch.Tensor
    clip: torch.Tensor

    @classmethod
    def of_mels(cls, model: VAE, mels: list[torch.Tensor]) -> ContentBank:
        frames, clip = [], []
        for i, m in enumerate(mels):
            z, speech = speech_content(model, m)
            frames.append(rearrange(z[:, speech.to(z.device)], "c n -> n c"))
            clip += [i] * int(speech.sum())
        return cls(torch.cat(frames), torch.tensor(clip, dtype=torch.long))

    def prematch(self, z_c: torch.Tensor, speech: torch.Tensor, clips: list[int], k: int = PREMATCH_K) -> torch.Tensor:
        """kNN-VC's prematching: content (B, Dc, L) with each speech frame (speech (B, L) bool) replaced by the mean
        of its k nearest frames from the voice's other clips (all clips when it has one): -> (B, Dc, L).

        A conversion that matches a source's content to the target's frames feeds
        the decoder exactly such sequences, frames spliced from other utterances.
        """
        out = z_c.clone()
        for b, own in enumerate(clips):
            keys = self.frames[self.clip != own] if bool((self.clip != own).any()) else self.frames
            query = rearrange(z_c[b][:, speech[b]], "c n -> n c")
            if len(query) == 0:
                continue
            nearest = torch.cdist(query, keys).topk(min(k, len(keys)), dim=-1, largest=False).indices  # (n, k)
            out[b][:, speech[b]] = rearrange(keys[nearest].mean(dim=1), "n c -> c n")
        return out


def adapt(
    model: VAE,
    vectors: VectorSet,
    clips: list[str | Path | torch.Tensor],
    name: str,
    config: AdaptConfig | None = None,
    settings: RecordingSettings | None = None,
    progress: bool = True,
    max_minutes: float | None = None,
    force: bool = False,
) -> Adapted:
    """Fine-tune a copy of `model` to the speaker of `clips`; `model` itself is left as it was."""
    config = config or AdaptConfig()
    config.validate()
    if not name or not name.strip() or any(c in name for c in "/\\\n"):
        raise ConfigError(f"--name: {name!r} is not a usable voice name")
    if name in vectors.speakers and not force:
        raise ConfigError(f"--name: the model already has a voice {name!r}; choose another name or pass --force to replace it")
    check_content_bank(config, vectors)
    deadline = Deadline(max_minutes)
    rate = model.mel_config.sample_rate
    utterances = prepare_recordings(clips, rate, settings)
    seconds = total_seconds(utterances, rate)
    if seconds < config.min_seconds:
        raise ValueError(
            f"too little speech to adapt on: {seconds:.1f} s after trimming silence from {len(clips)} input(s); "
            f"need at least {config.min_seconds:g} s (a minute or more works best)"
        )

    # Measured before training: recordings with too little voiced speech are
    # refused now, not after minutes of fine-tuning.
    try:
        pitch = f0_stats([u.audio for u in utterances], rate)
    except ValueError as e:
        raise ValueError(f"{', '.join(sorted({str(u.source) for u in utterances}))}: {e}") from None

    device = model.mel_mean.device
    frontend = MelFrontend(model.mel_config).to(device)
    with torch.inference_mode():
        mels = [frontend(u.audio.to(device)) for u in utterances]
    # A pitch_input model reads each clip's intonation as training did; a harmonic source also
    # learns the new voice's register from it ("pitch/register"), since conversions read it from z_new.
    contours = None
    if model.config.pitch_input:
        hop = model.mel_config.hop_length
        contours = [intonation(u.audio, rate, m.shape[-1], hop) for u, m in zip(utterances, mels)]
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    tuned = copy.deepcopy(model).train().requires_grad_(False)
    if config.trainable == "decoder":
        tuned.decoder.requires_grad_(True)
    elif config.trainable == "speaker_path":
        for block in tuned.decoder.blocks:
            block.style.requires_grad_(True)

    with torch.no_grad():
        latents = torch.stack([frozen.posterior(m[None]).speaker.mu[0] for m in mels])
    z_new = torch.nn.Parameter(latents.mean(0).clone())
    others_named = [vectors.speaker(s) for s in vectors.speakers if s != name]
    # With no other named voice (a model of one voice, replaced), draws from the aggregated posterior stand alone.
    known = torch.stack(others_named).to(device) if others_named else None
    preserve = bool(config.lambdas.get("preserve/voices", 0.0)) and config.trainable != "vector"
    cycle_voices = bool(config.lambdas.get("cycle/voices", 0.0))
    cycle = bool(config.lambdas.get("cycle/content", 0.0))
    bank = vectors.content_bank.to(device) if cycle and vectors.content_bank is not None else None
    prematched = None
    if config.lambdas.get("rec/prematched", 0.0):
        with torch.no_grad():
            prematched = ContentBank.of_mels(frozen, mels)
    tuned_params = [p for p in tuned.decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            *([{"params": tuned_params, "lr": config.lr}] if tuned_params else []),
            {"params": [z_new], "lr": config.speaker_lr, "weight_decay": 0.0},
        ]
    )
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    posterior = vectors.aggregated_posterior()
    log: list[dict[str, float]] = []
    n_speech_frames = sum(m.shape[-1] for m in mels)
    for step in tqdm(range(config.steps), desc=f"adapt {name}", disable=not progress):
        if deadline.spent():
            print(f"adapt: --max-minutes {max_minutes:g} spent at step {step} of {config.steps}; writing the model as it stands")
            break
        mel, crops, picks = random_segments(mels, config.segment_frames, config.batch_size, model.floor, g, contours)
        mel, contour = mel.to(device), None if crops is None else crops.to(device)
        xn, frames = frozen.prepare(mel)
        with torch.no_grad():
            seen = frozen.prepare(random_warp(mel, config.content_warp, generator=g))[0] if config.content_warp > 0 else xn
            z_c = frozen.content_encoder(seen).rsample()
        voice = repeat(z_new, "d -> b d", b=mel.shape[0])
        mu = tuned.decoder(z_c, voice, contour)  # the clips' own register, as in training
        n_frames = mel.shape[0] * frames
        terms = {
            "rec/nll": -tuned.log_likelihood(xn, mu, frames).sum() / n_frames,
            # -log N(z_new; 0, I) spread over the clips' frames: the MAP estimate's prior term.
            "prior/speaker": 0.5 * z_new.square().sum() / n_speech_frames,
        }
        if contour is not None and tuned.decoder.comb is not None:
            terms["pitch/register"] = register_loss(tuned, voice, contour)
        if preserve or cycle_voices:
            with torch.no_grad():
                # The other voices: known speaker vectors and draws from the aggregated posterior, half each.
                draws = [posterior.sample(config.batch_size // 2 + 1, generator=g).to(device)]
                if known is not None:
                    draws.insert(0, known[torch.randint(len(known), (config.batch_size // 2 + 1,), generator=g)])
                others = torch.cat(draws)[: config.batch_size]
                # Both decoders hear the clips' melody at the register the frozen model gives each other voice.
                others_pitch = frozen.with_register(contour, others)
                reference = frozen.decoder(z_c, others, others_pitch)
        if preserve:  # a frozen decoder (trainable="vector") keeps every voice by construction
            # The frozen decoder's output as data for the tuned one, in the same
            # units as rec/nll (a Gaussian with the model's sigma), so weight 1
            # makes the other voices count as much as the new one.
            terms["preserve/voices"] = (
                -tuned.log_likelihood(reference, tuned.decoder(z_c, others, others_pitch), frames).sum() / n_frames
                + frozen.log_likelihood(reference, reference, frames).sum() / n_frames
            )
        if cycle_voices:
            with torch.no_grad():
                # The clips' content as a conversion would read it: off speech in other voices.
                foreign = frozen.content_encoder(reference).rsample()
            terms["cycle/voices"] = -tuned.log_likelihood(xn, tuned.decoder(foreign, voice, contour), frames).sum() / n_frames
        if prematched is not None:
            # The crops rebuilt from their content spliced out of the voice's other clips (kNN-VC trains
            # its vocoder on such prematched features), for conversions that match content to the target's frames.
            with torch.no_grad():
                means = frozen.content_means(mel)
                speech = torch.stack([speech_latents(m, means.shape[-1], frozen.config.downsample) for m in mel])
                spliced = prematched.prematch(means, speech, picks)
            terms["rec/prematched"] = -tuned.log_likelihood(xn, tuned.decoder(spliced, voice, contour), frames).sum() / n_frames
        if bank is not None:
            # Conversion decodes other speakers' content with the new voice, which
            # rec/nll never asks for: the content encoder must read back the
            # content of known speech decoded in the new voice (training's
            # content_cycle_loss, with z_new as the foreign voice). The bank holds no
            # intonation, so a pitch_input decoder reads it as unvoiced here.
            content = bank[torch.randint(len(bank), (config.batch_size,), generator=g).to(device)]
            in_new_voice = repeat(z_new, "d -> b d", b=len(content))
            # The tuned model's content encoder is the frozen one (never trained here).
            n_bank_frames = len(content) * content.shape[-1] * tuned.config.downsample
            terms["cycle/content"] = content_read_back_loss(tuned, content, content, in_new_voice) / n_bank_frames
        loss = weighted_loss(terms, config.lambdas)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log.append({"step": step + 1, **{k: float(v.detach()) for k, v in terms.items()}})
    tuned.eval().requires_grad_(False)
    # The encoders are frozen, so the new voice's content statistics read the same in either model.
    content_stats = ContentStats.of_mels(tuned, mels).cpu() if tuned.config.content_latent == "gaussian" else None
    voices = add_voice(vectors, tuned, name, z_new.detach(), latents, content_stats)
    voices.f0[name] = pitch
    return Adapted(tuned, voices, name, MatchingSet.from_mels(tuned, mels), utterances, seconds, log)


def check_content_bank(config: AdaptConfig, vectors: VectorSet | None) -> None:
    """The content term needs the vector file's content bank: refused before any work, not after it."""
    if config.lambdas.get("cycle/content", 0.0) and (vectors is None or vectors.content_bank is None):
        raise ValueError(
            "adapt.lambdas.cycle/content: the model's vector file holds no content bank (made before it, or a "
            "categorical content latent); run `voicevae vectors` again with this model, or set the weight to 0"
        )


def add_voice(
    vectors: VectorSet,
    model: VAE,
    name: str,
    vector: torch.Tensor,
    latents: torch.Tensor,
    content: ContentStats | None = None,
) -> VectorSet:
    """A copy of `vectors` for `model` with speaker `name` at `vector`; the clips' latents give its spread,
    `content` its content statistics (content_norm)."""
    speaker = vectors.labels["speaker"]
    stats = LabelStats(dict(speaker.means), dict(speaker.stds), dict(speaker.counts))
    stats.means[name] = vector.cpu()
    stats.stds[name] = latents.std(0).cpu() if len(latents) > 1 else torch.zeros_like(vector).cpu()
    stats.counts[name] = len(latents)
    labels = {**vectors.labels, "speaker": stats}
    return VectorSet(
        model_fingerprint(model),
        vectors.mel,
        labels,
        dict(vectors.directions),
        vectors.posterior_mu,
        vectors.posterior_logvar,
        vectors.frame_scores,
        dict(vectors.f0),
        vectors.content_bank,  # the encoders are frozen, so the bank still reads as this model's content
        vectors.frame_baselines,
        {**{k: v for k, v in vectors.content.items() if k != name}, **({name: content} if content is not None else {})},
    )


def check_output_folder(out: Path, base: Path | None, force: bool) -> None:
    """Refuse an output folder that would lose something: any existing one without force, and with force
    anything but an earlier adapted model folder that is not the model being adapted."""
    if not out.exists():
        return
    if not force:
        raise FileExistsError(f"{out}: exists; choose another output folder or pass --force to replace it")
    if not out.is_dir() or not (out / "model.pt").is_file():
        raise FileExistsError(
            f"{out}: exists and is not a model folder (no model.pt inside); --force replaces only model folders"
        )
    if base is not None and out.resolve() == base.resolve():
        raise FileExistsError(f"{out}: is the folder of the model being adapted; write the adapted model elsewhere")


def save_adapted(
    adapted: Adapted, out_dir: str | Path, base: str | Path | None, config: AdaptConfig, force: bool = False
) -> Path:
    """Write OUT_DIR/model.pt, vectors.pt and matching/<name>.pt (see `check_output_folder`).

    The base model folder's matching sets (voices adapted before) come along,
    so every adapted voice keeps its retrieval. Written into a temporary
    sibling folder first and renamed into place, so an interrupted write
    leaves no half-written model folder.
    """
    out = Path(out_dir)
    base_dir = Path(base) if base is not None else None
    check_output_folder(out, base_dir, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        adapted.model.save(
            tmp / "model.pt",
            adapt={"base": str(base), "name": adapted.name, "seconds": adapted.seconds, "config": to_dict(config)},
        )
        if base_dir is not None and (base_dir / "matching").is_dir():
            shutil.copytree(base_dir / "matching", tmp / "matching")
        adapted.matching.save(tmp / "matching" / f"{adapted.name}.pt")
        adapted.vectors.save(tmp / "vectors.pt")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


# ------------------------------------------------------------------ CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--clips", nargs="+", required=True, metavar="FILE_OR_DIR", help="the new speaker's recordings (any length, any level)"
    )
    p.add_argument("--name", required=True, help="name of the new voice (a target for convert --target)")
    p.add_argument("-o", "--out-dir", required=True, help="model folder to write (model.pt + vectors.pt)")
    p.add_argument("--model", default=None, help="model folder or model.pt to start from (default: the shipped model)")
    p.add_argument("--steps", type=int, default=AdaptConfig.steps, help=f"fine-tuning steps (default {AdaptConfig.steps})")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="any AdaptConfig setting, e.g. lr=1e-4"
    )
    p.add_argument(
        "--max-minutes", type=float, metavar="M", help="stop fine-tuning after M minutes and write the model as it stands"
    )
    p.add_argument("--force", action="store_true", help="replace an existing output folder or voice name")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def run(args: argparse.Namespace) -> int:
    check_max_minutes(args.max_minutes)
    config = adapt_config(args.overrides, "adapt", steps=args.steps)
    model_path = DEFAULT_MODEL if args.model in (None, "default") else Path(args.model)
    if model_path.is_dir():
        model_path = model_path / "model.pt"
    out = Path(args.out_dir)
    check_output_folder(out, model_path.parent, args.force)
    model = VAE.load(model_path).to(args.device)
    vectors_path = model_path.parent / "vectors.pt"
    if not vectors_path.is_file():
        raise FileNotFoundError(f"{vectors_path}: no vector file beside the model; run `voicevae vectors` first")
    adapted = adapt(
        model,
        VectorSet.load(vectors_path, model),
        args.clips,
        args.name,
        config,
        progress=not args.quiet,
        max_minutes=args.max_minutes,
        force=args.force,
    )
    save_adapted(adapted, out, model_path.parent, config, force=args.force)
    last = adapted.log[-1] if adapted.log else {}
    print(
        f"{out}: voice {args.name!r} adapted on {adapted.seconds:.1f} s of speech in {len(adapted.log)} steps"
        + (f" (rec/nll {last['rec/nll']:.3f}, preserve/voices {last['preserve/voices']:.3f})" if last else "")
    )
    return 0
