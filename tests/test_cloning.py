"""Clone one voice: preparing recordings, adaptation, retrieval blending, content norm and pitch control."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from conftest import cli_option_changes_the_output

from voicevae.api import VoiceConverter, load
from voicevae.augment import warp_mel
from voicevae.cli import main
from voicevae.config import ConfigError, adapt_config
from voicevae.content_stats import MAX_SCALE, ContentStats, content_affine, speech_frames, speech_latents
from voicevae.corpora import read_manifest
from voicevae.matching import MatchingSet
from voicevae.model import VAE
from voicevae.pitch import f0_stats, median_f0, pitch_shift, semitones_between
from voicevae.recordings import RecordingSettings, prepare_recordings
from voicevae.training.adapt import AdaptConfig, adapt
from voicevae.vectors import BANK_CLIPS, BANK_FRAMES, VectorSet, bank_picks, model_fingerprint

RATE = 22050

pytestmark = pytest.mark.usefixtures("one_thread")


def tone(f0: float, seconds: float, level: float = 0.2, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    vib = 1 + 0.03 * np.sin(2 * np.pi * 4 * t)
    wav = sum(np.sin(2 * np.pi * k * f0 * np.cumsum(vib) / RATE) / k for k in range(1, 6))
    noise = 0.003 * np.random.default_rng(seed).standard_normal(t.size)
    return (level * wav / np.abs(wav).max() + noise).astype(np.float32)


@pytest.fixture(scope="module")
def vc(model_dir) -> VoiceConverter:
    return load(model_dir, vocoder="griffinlim", device="cpu")


@pytest.fixture(scope="module")
def new_voice(tmp_path_factory) -> Path:
    """A 'speaker' at 300 Hz the model never saw: one long take with pauses, as people record."""
    folder = tmp_path_factory.mktemp("recordings")
    silence = np.zeros(int(0.6 * RATE), dtype=np.float32)
    take = np.concatenate([tone(300, 2.0, seed=1), silence, tone(300, 1.5, 0.05, seed=2), silence, tone(310, 2.5, seed=3)])
    sf.write(folder / "take.wav", take, RATE)
    return folder


def test_recordings_are_split_at_silences_and_levelled():
    silence = np.zeros(int(0.8 * RATE), dtype=np.float32)
    click = np.zeros(int(0.1 * RATE), dtype=np.float32)
    click[100] = 0.5
    take = np.concatenate(
        [silence, tone(200, 1.0, 0.3), silence, tone(200, 1.2, 0.02), silence, click, silence, tone(200, 25.0, 0.1)]
    )
    settings = RecordingSettings(max_seconds=10.0)
    utts = prepare_recordings([torch.from_numpy(take)], RATE, settings)
    lengths = [u.samples / RATE for u in utts]
    # Two short utterances, the click dropped, the 25 s stretch cut into three pieces under 10 s.
    assert len(utts) == 5, lengths
    assert all(0.6 <= s <= 10.0 + 2 * settings.pad_seconds for s in lengths)
    assert abs(lengths[0] - (1.0 + 2 * settings.pad_seconds)) < 0.1
    # Each utterance at the target loudness whatever its recording level, padded with silence.
    for u in utts:
        lufs = float(torchaudio.functional.loudness(u.audio[None], RATE))
        assert abs(lufs - settings.target_lufs) < 0.5, lufs
        assert float(u.audio[: int(0.04 * RATE)].abs().max()) == 0.0


def test_a_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        prepare_recordings([tmp_path / "nope.wav"], RATE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: folder holds no audio files"):
        prepare_recordings([tmp_path / "empty"], RATE)


def test_adaptation_fits_the_new_voice_and_keeps_the_others(vc, new_voice):
    config = AdaptConfig(steps=40, min_seconds=2.0, segment_frames=32, batch_size=4, lr=3e-3)
    adapted = adapt(vc.model, vc.vectors, [new_voice], "new", config, progress=False)
    first, last = adapted.log[0], adapted.log[-1]
    assert last["rec/nll"] < first["rec/nll"] - 1.0, (first, last)
    # Encoders are untouched: sources are read as before.
    for name, value in vc.model.state_dict().items():
        if not name.startswith("decoder."):
            assert torch.equal(adapted.model.state_dict()[name], value), name
    assert any(
        not torch.equal(adapted.model.state_dict()[n], v) for n, v in vc.model.state_dict().items() if n.startswith("decoder.")
    )
    # The new voice is in a vector file that belongs to the adapted model; the old voices stay.
    assert adapted.vectors.speakers == sorted([*vc.speakers, "new"])
    assert adapted.vectors.fingerprint == model_fingerprint(adapted.model)
    assert 250 < adapted.vectors.f0["new"]["median_hz"] < 360
    # Without the preservation term the other voices drift further on the same content.
    loose = adapt(
        vc.model, vc.vectors, [new_voice], "new", AdaptConfig(**{**config.__dict__, "lambdas": {"rec/nll": 1.0}}), progress=False
    )
    mel = vc.mel(torch.from_numpy(tone(150, 1.0)))[None]
    q = vc.model.encode(mel)

    @torch.inference_mode()
    def drift(model: VAE) -> float:
        return sum(
            float(
                (
                    model.decode(q.content.mu, vc.vectors.speaker(s)[None])
                    - vc.model.decode(q.content.mu, vc.vectors.speaker(s)[None])
                )
                .abs()
                .mean()
            )
            for s in vc.speakers
        )

    assert drift(adapted.model) < 0.7 * drift(loose.model), (drift(adapted.model), drift(loose.model))


def test_content_warp_fits_the_decoder_to_content_read_from_other_voices(vc, new_voice):
    config = AdaptConfig(steps=40, min_seconds=2.0, segment_frames=32, batch_size=4, lr=3e-3, lambdas={"rec/nll": 1.0})
    plain = adapt(vc.model, vc.vectors, [new_voice], "new", config, progress=False)
    warped = adapt(vc.model, vc.vectors, [new_voice], "new", replace(config, content_warp=0.3), progress=False)
    mel = vc.mel(torch.from_numpy(tone(300, 1.0)))[None]

    @torch.inference_mode()
    def error(adapted, alpha: float) -> float:
        """The new voice rendered from the content of a copy of its own clip that sounds like another voice."""
        model = adapted.model
        xn, frames = model.prepare(mel)
        seen = model.prepare(warp_mel(mel, torch.tensor([alpha])))[0]
        out = model.decoder(model.content_encoder(seen).mu, adapted.vectors.speaker("new")[None])
        return float((out - xn)[..., :frames].abs().mean())

    # Only the warped fit has seen content read off a voice-shifted copy and been asked for the original.
    for alpha in (0.8, 1.25):
        assert error(warped, alpha) < error(plain, alpha), (alpha, error(warped, alpha), error(plain, alpha))
    with pytest.raises(ConfigError, match="content_warp"):
        AdaptConfig(content_warp=1.5).validate()


def test_voice_cycle_rebuilds_the_clips_from_content_read_off_other_voices(vc, new_voice, monkeypatch):
    # What the term is for (nearer the target, measured by `evaluate --cloning`, README) needs a
    # trained model; here the data flow: the frozen decoder renders the clips in other voices,
    # the content encoder reads that rendering, and the tuned decoder rebuilds the clips from it.
    from voicevae.model import ContentEncoder, Decoder

    rendered, read = [], []
    decode, encode = Decoder.forward, ContentEncoder.forward

    def spy_decode(self, z_c, z_s, *args, **kwargs):
        out = decode(self, z_c, z_s, *args, **kwargs)
        rendered.append((out, z_s.detach().clone(), torch.is_grad_enabled()))
        return out

    def spy_encode(self, x, *args, **kwargs):
        read.append(x)
        return encode(self, x, *args, **kwargs)

    monkeypatch.setattr(Decoder, "forward", spy_decode)
    monkeypatch.setattr(ContentEncoder, "forward", spy_encode)
    config = AdaptConfig(steps=3, min_seconds=2.0, segment_frames=32, batch_size=4, lambdas={"rec/nll": 1.0, "cycle/voices": 1.0})
    cycled = adapt(vc.model, vc.vectors, [new_voice], "new", config, progress=False)
    assert [set(entry) >= {"rec/nll", "cycle/voices"} for entry in cycled.log] == [True] * 3
    new = cycled.vectors.speaker("new")
    # Each step reads content off a no-grad rendering in voices other than the new one ...
    renderings = [(out, z_s) for out, z_s, grad in rendered if not grad]
    reread = [(out, z_s) for out, z_s in renderings if any(x is out for x in read)]
    assert len(reread) == 3 and all(not torch.allclose(z_s, new.expand_as(z_s)) for _, z_s in reread)
    # ... and with weight 0 nothing is read off a rendering.
    rendered.clear(), read.clear()
    adapt(vc.model, vc.vectors, [new_voice], "new", replace(config, lambdas={"rec/nll": 1.0}), progress=False)
    assert not any(x is out for out, _, _ in rendered for x in read)


def test_prematching_splices_each_speech_frame_from_the_voices_other_clips(vc, new_voice, monkeypatch):
    from voicevae.model import Decoder
    from voicevae.training.adapt import ContentBank

    bank = ContentBank(torch.tensor([[0.0, 0.0], [1.0, 1.0], [10.0, 10.0], [11.0, 11.0]]), torch.tensor([0, 0, 1, 1]))
    z_c = torch.tensor([[[0.1, 10.2, 5.0], [0.1, 10.2, 5.0]]])  # three frames, the last silence
    speech = torch.tensor([[True, True, False]])
    # Clip 1's own frames are never its neighbours: both speech frames come from clip 0.
    torch.testing.assert_close(bank.prematch(z_c, speech, [1], k=1)[0], torch.tensor([[0.0, 1.0, 5.0], [0.0, 1.0, 5.0]]))
    torch.testing.assert_close(bank.prematch(z_c, speech, [0], k=2)[0, 0], torch.tensor([10.5, 10.5, 5.0]))
    # A voice of one clip matches within it.
    alone = ContentBank(bank.frames[:2], torch.tensor([0, 0]))
    torch.testing.assert_close(alone.prematch(z_c, speech, [0], k=1)[0, 0], torch.tensor([0.0, 1.0, 5.0]))

    # In adaptation the term decodes, with gradient, what prematch gives for the crops and their clips.
    decoded, matched = [], []
    decode, prematch = Decoder.forward, ContentBank.prematch

    def spy_decode(self, z_c, z_s, *args, **kwargs):
        decoded.append((z_c.detach().clone(), torch.is_grad_enabled()))
        return decode(self, z_c, z_s, *args, **kwargs)

    def spy_prematch(self, z_c, speech, clips, *args, **kwargs):
        out = prematch(self, z_c, speech, clips, *args, **kwargs)
        matched.append((out.clone(), list(clips), len(self.frames)))
        return out

    monkeypatch.setattr(Decoder, "forward", spy_decode)
    monkeypatch.setattr(ContentBank, "prematch", spy_prematch)
    lambdas = {"rec/nll": 1.0, "rec/prematched": 1.0}
    config = AdaptConfig(steps=2, min_seconds=2.0, segment_frames=32, batch_size=4, lambdas=lambdas)
    out = adapt(vc.model, vc.vectors, [new_voice], "new", config, progress=False)
    assert len(out.log) == 2 and all(math.isfinite(entry["rec/prematched"]) for entry in out.log)
    assert len(matched) == 2
    n_clips = len(out.utterances)
    for spliced, clips, _ in matched:
        assert len(clips) == 4 and all(0 <= c < n_clips for c in clips)
        assert any(grad and torch.equal(z, spliced) for z, grad in decoded)
    # The bank holds the speech frames of every clip the adaptation kept.
    own = ContentBank.of_mels(vc.model, [vc.mel(u.audio) for u in out.utterances])
    assert matched[0][2] == len(own.frames) and set(own.clip.tolist()) == set(range(n_clips))


def test_content_consistency_keeps_known_speech_readable_in_the_new_voice(vc, new_voice):
    # The vector file carries crops of its clips' content (9 clips of 0.8 s, all long enough).
    bank = vc.vectors.content_bank
    assert bank is not None and bank.shape == (9, vc.model.config.content_dim, BANK_FRAMES)
    # A long manifest gives at most BANK_CLIPS crops, spread to its end (it runs speaker by speaker).
    for n in (9, 256, 257, 2607):
        picks = bank_picks(n)
        assert len(picks) <= BANK_CLIPS and picks[-1] >= n - n // BANK_CLIPS - 1, (n, picks)
    config = AdaptConfig(steps=40, min_seconds=2.0, segment_frames=32, batch_size=4, lr=3e-3, lambdas={"rec/nll": 1.0})
    plain = adapt(vc.model, vc.vectors, [new_voice], "new", config, progress=False)
    cycled = adapt(
        vc.model,
        vc.vectors,
        [new_voice],
        "new",
        replace(config, lambdas={"rec/nll": 1.0, "cycle/content": 100.0}),
        progress=False,
    )
    assert cycled.vectors.content_bank is bank  # the adapted model's encoders are the same

    @torch.inference_mode()
    def read_back_error(adapted) -> float:
        """Known speech decoded in the new voice and read again by the (frozen) content encoder."""
        z_new = adapted.vectors.speaker("new")[None].expand(len(bank), -1)
        decoded = adapted.model.decoder(bank, z_new)
        return float((adapted.model.content_encoder(decoded).mu - bank).square().mean())

    assert read_back_error(cycled) < 0.8 * read_back_error(plain), (read_back_error(cycled), read_back_error(plain))
    with pytest.raises(ValueError, match="holds no content bank.*voicevae vectors"):
        adapt(
            vc.model, replace(vc.vectors, content_bank=None), [new_voice], "new", replace(config, lambdas={"cycle/content": 1.0})
        )


def test_bad_adaptation_input_is_refused_clearly(vc, new_voice, tmp_path):
    with pytest.raises(ValueError, match=r"too little speech to adapt on: .* need at least 60 s"):
        adapt(vc.model, vc.vectors, [new_voice], "new", AdaptConfig(steps=1, min_seconds=60.0), progress=False)
    with pytest.raises(ConfigError, match="already has a voice 'spk0'"):
        adapt(vc.model, vc.vectors, [new_voice], "spk0", AdaptConfig(steps=1, min_seconds=1.0), progress=False)
    with pytest.raises(ConfigError, match=r"adapt.lambdas: unknown loss name.*rec/nl"):
        AdaptConfig(lambdas={"rec/nl": 1.0}).validate()
    # A weight set on the command line joins the default ones; it does not replace them all.
    config = adapt_config(["lambdas.cycle/content=2", "lr=1e-4"], "adapt", steps=7)
    assert config.lambdas == {**AdaptConfig().lambdas, "cycle/content": 2.0}
    assert (config.steps, config.lr) == (7, 1e-4)


def test_adapt_cli_writes_a_model_folder_that_loads(model_dir, new_voice, tmp_path):
    out = tmp_path / "adapted"
    args = [
        "adapt",
        "--clips",
        str(new_voice),
        "--name",
        "new",
        "-o",
        str(out),
        "--model",
        str(model_dir),
        "--steps",
        "3",
        "--quiet",
    ]
    assert main([*args, "--set", "min_seconds=1", "--set", "segment_frames=32"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["matching", "model.pt", "vectors.pt"]
    adapted = load(out, vocoder="griffinlim", device="cpu")
    assert "new" in adapted.speakers and "spk0" in adapted.speakers
    src = torch.from_numpy(tone(150, 1.0))
    assert adapted.convert(src, "new", retrieval=0.5).shape == adapted.convert(src, "new").shape
    before = (out / "model.pt").read_bytes()
    assert main([*args, "--set", "min_seconds=1"]) == 1  # the folder exists: refused, untouched
    assert (out / "model.pt").read_bytes() == before
    assert main([*args[:6], str(tmp_path / "other"), *args[7:], "--set", "min_seconds=100"]) == 1
    assert not (tmp_path / "other").exists()


def test_retrieval_blends_toward_the_targets_own_frames(vc):
    target_mels = [vc.mel(torch.from_numpy(tone(300, 1.0, seed=s))) for s in range(2)]
    matching = MatchingSet.from_mels(vc.model, target_mels)
    assert len(matching) == sum(m.shape[-1] for m in target_mels)
    converted = vc.mel(torch.from_numpy(tone(150, 1.0)))
    torch.testing.assert_close(matching.blend(vc.model, converted, 0.0), converted)
    # Ratio 1 with one neighbour: every frame is one of the target's frames.
    replaced = matching.blend(vc.model, converted, 1.0, k=1)
    frames = torch.cat(target_mels, dim=-1)
    distance = (replaced.T[:, None, :] - frames.T[None]).abs().amax(-1).min(-1).values
    assert float(distance.max()) < 1e-4
    half = matching.blend(vc.model, converted, 0.5, k=1)
    torch.testing.assert_close(half, 0.5 * converted + 0.5 * replaced)
    with pytest.raises(ValueError, match=r"retrieval must be in \[0, 1\]"):
        matching.blend(vc.model, converted, 1.5)


def test_detail_adds_back_what_the_model_loses_of_the_source(vc, model_dir, tmp_path):
    src = torch.from_numpy(tone(150, 1.0))
    mel = vc.mel(src)
    target = vc.vectors.speaker("spk1")
    plain = vc.convert_mel(src, target)
    # At strength 0 the two decodes are one: detail 1 gives back the source's own log-mel.
    torch.testing.assert_close(vc.convert_mel(src, target, strength=0.0, detail=1.0), mel, atol=1e-4, rtol=0)
    # Otherwise the conversion plus D times the source's loss through the VAE, its resynthesis.
    loss = mel - vc.convert_mel(src, None)
    assert float(loss.abs().mean()) > 0.05  # the tiny model loses something worth adding back
    torch.testing.assert_close(vc.convert_mel(src, target, detail=0.4), plain + 0.4 * loss, atol=1e-4, rtol=0)
    assert vc.convert(src, target, detail=0.4).shape == vc.convert(src, target).shape
    with pytest.raises(ValueError, match=r"detail must be in \[0, 1\]"):
        vc.convert(src, target, detail=-0.1)
    with pytest.raises(ValueError, match="detail needs a target voice"):
        vc.convert_mel(src, None, detail=0.5)
    # The CLI's --detail reaches the conversion; a bad value is refused before any file is written.
    sf.write(tmp_path / "src.wav", src.numpy(), RATE)
    args = ["convert", str(tmp_path / "src.wav"), "--model", str(model_dir), "--vocoder", "griffinlim", "--target", "spk1"]
    cli_option_changes_the_output(args, "--detail", tmp_path)


def test_matching_spaces_context_and_stored_sets(vc, tmp_path):
    from voicevae.checkpoint import save_checkpoint
    from voicevae.matching import frame_keys, parse_space

    target_mels = [vc.mel(torch.from_numpy(tone(300 + 40 * s, 1.0, seed=s))) for s in range(2)]
    content = MatchingSet.from_mels(vc.model, target_mels)
    mfcc = content.respace(vc.model, "mfcc", context=2)
    assert (mfcc.space, mfcc.context, mfcc.lengths) == ("mfcc", 2, content.lengths)
    torch.testing.assert_close(mfcc.mels, content.mels)  # the same frames, other keys
    # Cepstra without c0, mean-normalised per clip: a level change does not move
    # the keys, so a louder copy of a target clip retrieves that clip frame for frame.
    louder = target_mels[1] + 2.0
    torch.testing.assert_close(frame_keys(vc.model, louder, "mfcc"), frame_keys(vc.model, target_mels[1], "mfcc"))
    torch.testing.assert_close(mfcc.blend(vc.model, louder, 1.0, k=1), target_mels[1])
    # Context stacks each frame's neighbours: 5 frames' worth of channels, unit norm.
    plain, wide = frame_keys(vc.model, louder, "mfcc"), frame_keys(vc.model, louder, "mfcc", context=2)
    assert wide.shape == (plain.shape[0], 5 * plain.shape[1])
    torch.testing.assert_close(wide.norm(dim=-1), torch.ones(wide.shape[0]))
    torch.testing.assert_close(wide[10], torch.cat([plain[f] for f in range(8, 13)]) / 5**0.5)
    # The space travels with a stored set; a set stored before it did is read as content keys.
    back = MatchingSet.load(mfcc.save(tmp_path / "m.pt"))
    assert (back.space, back.context, back.lengths) == ("mfcc", 2, mfcc.lengths)
    save_checkpoint(tmp_path / "old.pt", "matching", {"keys": content.keys, "mels": content.mels})
    old = MatchingSet.load(tmp_path / "old.pt")
    assert (old.space, old.context) == ("content", 0)
    torch.testing.assert_close(old.blend(vc.model, louder, 0.5), content.blend(vc.model, louder, 0.5))
    assert parse_space("content:3") == ("content", 3)
    for bad in ("wavlm", "mfcc:x"):
        with pytest.raises(ValueError, match=f"matching space '{bad}'"):
            parse_space(bad)
    src = torch.from_numpy(tone(150, 1.0))
    assert vc.convert(src, [src], retrieval=1.0, matching=mfcc).shape == vc.convert(src, [src]).shape
    clip = tmp_path / "ref.wav"
    sf.write(clip, tone(300, 1.0), RATE)
    by_file = vc.matching_set([clip], space="mfcc:2")
    assert (by_file.space, by_file.context) == ("mfcc", 2) and vc.matching_set([clip]).space == "content"


def test_retrieval_needs_the_targets_frames(vc):
    src = torch.from_numpy(tone(150, 1.0))
    with pytest.raises(ValueError, match="voice 'spk0' has no matching set"):
        vc.convert(src, "spk0", retrieval=0.5)
    with pytest.raises(ValueError, match="not a vector"):
        vc.convert(src, vc.vectors.speaker("spk0"), retrieval=0.5)
    refs = [torch.from_numpy(tone(300, 1.0, seed=s)) for s in range(2)]
    assert vc.convert(src, refs, retrieval=1.0).shape == vc.convert(src, refs).shape


def test_pitch_tracking_and_shifting():
    wav = torch.from_numpy(tone(200, 1.5))
    assert abs(median_f0(wav, RATE) - 200) < 6
    up = pitch_shift(wav, RATE, 12.0)
    assert abs(semitones_between(200, median_f0(up, RATE)) - 12.0) < 0.5
    stats = f0_stats([wav, torch.from_numpy(tone(400, 1.5))], RATE)
    assert 190 < stats["median_hz"] < 410 and stats["std_semitones"] > 5
    with pytest.raises(ValueError, match="too little voiced speech"):
        f0_stats([torch.zeros(RATE)], RATE)


def test_match_pitch_moves_the_output_to_the_targets_median(vc, monkeypatch):
    # The vector file carries each speaker's F0 statistics (tone corpus: spk0 at 110 Hz, spk2 at 247.5 Hz).
    assert abs(vc.vectors.f0["spk0"]["median_hz"] - 110) < 8 and abs(vc.vectors.f0["spk2"]["median_hz"] - 247.5) < 12
    goal = vc.vectors.f0["spk2"]["median_hz"]
    out = vc.adjust_pitch(torch.from_numpy(tone(165, 1.5)), "spk2", pitch_shift=1.0, match_pitch=True)
    assert abs(semitones_between(goal, median_f0(out, RATE)) - 1.0) < 0.4
    same = torch.from_numpy(tone(165, 1.5))
    assert vc.adjust_pitch(same, "spk2") is same  # no shift asked: untouched
    # Already within match_pitch_tolerance of the target: left alone (every shift costs quality).
    close = torch.from_numpy(tone(goal * 2 ** (0.4 / 12), 1.5))
    assert vc.adjust_pitch(close, "spk2", match_pitch=True) is close
    silent = torch.zeros(RATE)
    with pytest.warns(UserWarning, match="no voiced frames"):
        assert vc.adjust_pitch(silent, "spk2", match_pitch=True) is silent
    with pytest.raises(ValueError, match="match_pitch needs the target's pitch"):
        vc.adjust_pitch(out, vc.vectors.speaker("spk0"), match_pitch=True)
    # convert hands its pitch settings to adjust_pitch with the target.
    calls = []
    monkeypatch.setattr(
        vc, "adjust_pitch", lambda audio, target, shift, match, hz: calls.append((target, shift, match, hz)) or audio
    )
    vc.convert(torch.from_numpy(tone(165, 1.0)), "spk2", pitch_shift=-2.0, match_pitch=True)
    assert calls == [("spk2", -2.0, True, None)]
    # F0 statistics round-trip through the vector file.
    assert VectorSet.load(vc.model_dir / "vectors.pt").f0 == vc.vectors.f0


def test_cloning_protocol_budgets_and_arguments(tone_corpus, model_dir, capsys):
    from voicevae.evaluate_cloning import budget_clips

    clips = [u for u in read_manifest(tone_corpus) if u.speaker == "spk0"]  # 0.8 s each
    assert len(budget_clips(clips, 1.0)) == 2 and len(budget_clips(clips, 0.1)) == 1
    assert budget_clips(clips, 100.0) == clips  # fewer seconds than asked: all of them
    base = ["evaluate", "--model", str(model_dir), "--manifest", str(tone_corpus), "--vocoder", "griffinlim"]
    for extra, message in [
        (["--cloning", "30,a"], "--cloning '30,a': expected seconds"),
        (["--cloning", "30", "--cloning-retrieval", "1.5"], "each ratio must be in"),
        (["--cloning", "30", "--cloning-retrieval", "0.5,x"], "--cloning-retrieval '0.5,x': expected ratios"),
        (["--cloning", "30", "--cloning-spaces", "content,hubert"], "matching space 'hubert'"),
        (["--cloning", "30", "--cloning-detail", "0.5,x"], "--cloning-detail '0.5,x': expected values"),
        (["--cloning", "30", "--cloning-detail", "0"], "each value must be in (0, 1]"),
        (["--unseen", "--detail", "1.5"], "--detail 1.5: must be in [0, 1]"),
        (["--unseen", "--content-norm", "-1"], "--content-norm -1: must be in [0, 1]"),
        (["--cloning", "30", "--cloning-content-norm", "0.5,2"], "--cloning-content-norm '0.5,2': each value must be in (0, 1]"),
        (["--cloning", "30", "--content-norm", "1"], "use --cloning-content-norm"),
        (["--cloning", "30", "--cloning-f0-spread", "0,1"], "--cloning-f0-spread '0,1': each value must be in (0, 1]"),
        (["--f0-spread", "0.5"], "--f0-spread is an option of --unseen"),
        (["--unseen", "--f0-spread", "1.5"], "--f0-spread 1.5: must be in [0, 1]"),
        (["--content-norm", "1.5"], "content_norm must be in [0, 1]"),
        (["--cloning", "30", "--adapt-set", "trainable=everything"], "trainable: must be one of"),
        (["--cloning", "30"], "needs at least 2 held-out voices"),  # the tone corpus has none
    ]:
        assert main([*base, *extra]) == 1
        assert message in capsys.readouterr().err


def test_cloning_add_on_conditions_are_paired_with_their_plain_twins():
    from voicevae.evaluate_cloning import Scores, add_on_conditions, conditions, differences

    add_ons = {"detail": [0.5], "content_norm": [1.0]}
    names = conditions([1.0], add_ons=add_ons)
    added = ["zero-shot + detail 0.5", "adapted + detail 0.5", "adapted + retrieval 1 + detail 0.5"]
    stacked = [f"{n} + content norm 1" for n in added]
    assert [n for n in names if "detail" in n] == added + stacked
    assert [n for n in names if "content norm" in n] == [n.replace("detail 0.5", "content norm 1") for n in added] + stacked
    # One option alone stacks with nothing.
    assert not [n for n in conditions([1.0], add_ons={"detail": [0.5, 1.0]}) if n.count(" + ") > 2]
    # Without the default key space there is no plain retrieval condition to add detail to.
    assert [n for n in conditions([1.0], ["mfcc"], {"detail": [0.5]}) if "detail" in n] == added[:2]
    # Condition i scores 0.1 * i above the first in similarity and i word errors in 4 words on its first conversion.
    per = {c: Scores([0.5 + 0.1 * i, 0.6], [0.4, 0.4], [i, 1], [4, 4], [0.0, 0.0], [0.0, 0.0]) for i, c in enumerate(names)}
    twins = {c: plain for c, (plain, _, _) in add_on_conditions(add_ons, [1.0]).items()}
    listed = [(m, c, b) for _, m, c, b, _ in differences({60.0: per}, {c: p for c, p in twins.items() if p != "adapted"})]
    assert len(listed) == len(set(listed))  # each pair once
    rows = {(m, c, b): d for _, m, c, b, d in differences({60.0: per}, twins)}
    for cond, plain in twins.items():
        gap = names.index(cond) - names.index(plain)
        assert math.isclose(rows["similarity to target", cond, plain].mean, 0.05 * gap)
        assert math.isclose(rows["WER per clip", cond, plain].mean, gap / 8)
    # And what adaptation itself costs in words.
    gap = names.index("adapted") - names.index("zero-shot")
    assert math.isclose(rows["WER per clip", "adapted", "zero-shot"].mean, gap / 8)


def test_adapt_never_replaces_what_is_not_an_adapted_model_folder(vc, model_dir, new_voice, tmp_path):
    from voicevae.training.adapt import save_adapted

    config = AdaptConfig(steps=2, min_seconds=1.0, segment_frames=32)
    first = vc.adapt([new_voice], "one", out_dir=tmp_path / "one", config=config, progress=False)
    assert (tmp_path / "one" / "matching" / "one.pt").is_file()
    # Adapting the adapted model again keeps the earlier voice's matching set.
    second = first.adapt([new_voice], "two", out_dir=tmp_path / "two", config=config, progress=False)
    assert sorted(p.name for p in (tmp_path / "two" / "matching").iterdir()) == ["one.pt", "two.pt"]
    assert {"one", "two"} <= set(second.speakers)
    # --force replaces an adapted model folder, never the recordings, another folder, or the base model.
    with pytest.raises(FileExistsError, match="not a model folder"):
        vc.adapt([new_voice], "x", out_dir=new_voice, config=config, force=True, progress=False)
    assert (new_voice / "take.wav").is_file()
    with pytest.raises(FileExistsError, match="is the folder of the model being adapted"):
        vc.adapt([new_voice], "x", out_dir=model_dir, config=config, force=True, progress=False)
    adapted = adapt(vc.model, vc.vectors, [new_voice], "again", config, progress=False)
    save_adapted(adapted, tmp_path / "one", model_dir, config, force=True)
    assert (tmp_path / "one" / "matching" / "again.pt").is_file() and not (tmp_path / "one" / "matching" / "one.pt").exists()


def test_speech_frames_leave_out_silence():
    mel = torch.full((80, 100), -11.0)
    mel[:, 20:60] = -2.0
    mel[:, 70:75] = -5.0  # quieter speech, 3 nats (26 dB) down: still speech
    speech = speech_frames(mel)
    assert speech[20:60].all() and speech[70:75].all()
    assert not speech[:20].any() and not speech[60:70].any() and not speech[75:].any()


def test_the_affine_map_takes_the_targets_mean_and_spread():
    torch.manual_seed(0)
    z = torch.randn(4, 500) * torch.tensor([[0.5], [2.0], [1.0], [0.1]]) + 3.0
    source = ContentStats(z.mean(1), z.std(1))
    target = ContentStats(torch.tensor([0.0, 1.0, -1.0, 2.0]), torch.tensor([1.0, 0.8, 3.0, 0.2]))
    scale, shift = content_affine(source, target, 1.0)
    moved = z * scale[:, None] + shift[:, None]
    torch.testing.assert_close(moved.mean(1), target.mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(moved.std(1), target.sd, atol=1e-4, rtol=0)
    scale, shift = content_affine(source, target, 0.0)
    torch.testing.assert_close(z * scale[:, None] + shift[:, None], z)
    # Halfway is the mean of the two ends, frame by frame.
    scale, shift = content_affine(source, target, 0.5)
    torch.testing.assert_close(z * scale[:, None] + shift[:, None], 0.5 * (z + moved), atol=1e-5, rtol=0)
    # A channel that barely moves in the source is stretched at most MAX_SCALE times; its mean still lands.
    flat = ContentStats(torch.tensor([3.0]), torch.tensor([0.01]))
    scale, shift = content_affine(flat, ContentStats(torch.tensor([1.0]), torch.tensor([1.0])), 1.0)
    assert float(scale) == MAX_SCALE and float(3.0 * scale + shift) == pytest.approx(1.0)


def test_content_norm_decodes_the_source_with_the_targets_statistics(vc):
    src = torch.from_numpy(tone(150, 1.0))
    refs = [torch.from_numpy(tone(300, 1.0, level=0.05, seed=s)) for s in range(2)]
    plain = vc.convert_mel(src, refs)
    torch.testing.assert_close(vc.convert_mel(src, refs, content_norm=0.0), plain)
    normed = vc.convert_mel(src, refs, content_norm=1.0)
    assert float((normed - plain).abs().mean()) > 0.01
    # What content_norm=1 decodes: the source's latents, moved to the statistics of the target clips' latents.
    mel = vc.mel(src)
    target = ContentStats.of_mels(vc.model, [vc.mel(r) for r in refs])
    scale, shift = content_affine(ContentStats.of_mels(vc.model, [mel]), target, 1.0)
    moved = vc.model.content_means(mel[None]) * scale[:, None] + shift[:, None]
    # Over the source's speech frames the moved latents have the target's mean and spread
    # (the tone's channels spread enough that no scale reaches its clamp).
    speech = speech_latents(mel, moved.shape[-1], vc.model.config.downsample)
    torch.testing.assert_close(moved[0][:, speech].mean(1), target.mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(moved[0][:, speech].std(1), target.sd, atol=1e-4, rtol=0)
    decoded = vc.model.decode(moved, vc.speaker_vector(refs)[None], mel.shape[-1], vc.intonation(src, mel.shape[-1]))[0]
    torch.testing.assert_close(normed, decoded, atol=1e-4, rtol=0)
    # A matching set given stands in for the clips' own: another voice's set gives another output, its own.
    others = [vc.mel(torch.from_numpy(tone(220, 1.0, seed=s))) for s in range(2)]
    elsewhere = vc.convert_mel(src, refs, content_norm=1.0, matching=MatchingSet.from_mels(vc.model, others))
    assert float((elsewhere - normed).abs().mean()) > 1e-3
    scale, shift = content_affine(ContentStats.of_mels(vc.model, [mel]), ContentStats.of_mels(vc.model, others), 1.0)
    moved = vc.model.content_means(mel[None]) * scale[:, None] + shift[:, None]
    decoded = vc.model.decode(moved, vc.speaker_vector(refs)[None], mel.shape[-1], vc.intonation(src, mel.shape[-1]))[0]
    torch.testing.assert_close(elsewhere, decoded, atol=1e-4, rtol=0)
    assert vc.convert(src, refs, content_norm=0.5, retrieval=0.5).shape == vc.convert(src, refs).shape


def test_named_voices_keep_their_content_statistics_in_the_vector_file(vc, model_dir, tone_corpus, new_voice, tmp_path):
    # `voicevae vectors` pools each speaker's speech frames over all its clips, as reference clips are pooled.
    clips = [u.path for u in read_manifest(tone_corpus) if u.speaker == "spk0"]
    expected = ContentStats.of_mels(vc.model, [vc.mel(c) for c in clips])
    for stored in (vc.vectors.content["spk0"], VectorSet.load(model_dir / "vectors.pt").content["spk0"]):
        torch.testing.assert_close(stored.mean, expected.mean, atol=1e-5, rtol=0)
        torch.testing.assert_close(stored.sd, expected.sd, atol=1e-5, rtol=0)
    assert set(vc.vectors.content) == set(vc.speakers)
    # Over speech frames only: a take with pauses gets the statistics of its speech, not of its silences.
    from voicevae.corpora import Utterance
    from voicevae.vectors import compute_vectors

    take = Utterance(new_voice / "take.wav", "take", "", "train", {})
    pauses = compute_vectors(vc.model, [take], is_samples=1, progress=False, f0_clips=0).content["take"]
    z_c = vc.model.content_means(vc.mel(take.path)[None])[0]
    speech = speech_latents(vc.mel(take.path), z_c.shape[-1], vc.model.config.downsample)
    assert 0 < int((~speech).sum()), "the take has pauses"
    torch.testing.assert_close(pauses.mean, z_c[:, speech].mean(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(pauses.sd, z_c[:, speech].std(1), atol=1e-5, rtol=0)
    # A named voice converts with them: its conversion decodes the source's latents moved to spk0's statistics.
    src = torch.from_numpy(tone(150, 1.0))
    mel = vc.mel(src)
    scale, shift = content_affine(ContentStats.of_mels(vc.model, [mel]), expected, 1.0)
    moved = vc.model.content_means(mel[None]) * scale[:, None] + shift[:, None]
    decoded = vc.model.decode(moved, vc.vectors.speaker("spk0")[None], mel.shape[-1], vc.intonation(src, mel.shape[-1]))[0]
    torch.testing.assert_close(vc.convert_mel(src, "spk0", content_norm=1.0), decoded, atol=1e-4, rtol=0)
    # A matching set given stands in for them, as it does for retrieval.
    others = [vc.mel(torch.from_numpy(tone(220, 1.0, seed=s))) for s in range(2)]
    given = MatchingSet.from_mels(vc.model, others)
    assert torch.equal(vc.content_stats_for("spk0", given).mean, ContentStats.of_mels(vc.model, others).mean)
    # The vector file is read onto the CPU; the statistics are used where the model runs (a GPU, say).
    with pytest.MonkeyPatch.context() as m:
        m.setattr(vc, "device", torch.device("meta"))
        assert vc.content_stats_for("spk0").mean.device.type == vc.content_stats_for("spk0").sd.device.type == "meta"
    # Adaptation stores the new voice's statistics, those of its cleaned clips (its matching set's).
    config = AdaptConfig(steps=2, min_seconds=1.0, segment_frames=32)
    adapted = vc.adapt([new_voice], "fresh", out_dir=tmp_path / "fresh", config=config, progress=False)
    clip_stats = ContentStats.of_mels(adapted.model, adapted.matching_for("fresh").clip_mels())
    torch.testing.assert_close(adapted.vectors.content["fresh"].mean, clip_stats.mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(adapted.vectors.content["fresh"].sd, clip_stats.sd, atol=1e-5, rtol=0)
    assert {"fresh", "spk0"} <= set(adapted.vectors.content)


def test_content_norm_on_a_chunked_clip_counts_each_latent_frame_once(vc, monkeypatch):
    import copy

    import voicevae.content_stats as content_stats

    src = torch.from_numpy(tone(150, 2.0))
    frames = vc.mel(src).shape[-1]
    chunked = copy.copy(vc)
    chunked.chunk_frames, chunked.overlap_frames = 40, 8  # 173 frames: five chunks, each with overlaps
    seen: list[int] = []
    of_latents = content_stats.ContentStats.of_latents.__func__  # type: ignore[attr-defined]

    def spy(cls, pieces):
        seen.extend(z.shape[-1] for z, _ in pieces)
        return of_latents(cls, pieces)

    monkeypatch.setattr(content_stats.ContentStats, "of_latents", classmethod(spy))
    refs = [torch.from_numpy(tone(300, 1.0, level=0.05, seed=s)) for s in range(2)]
    out = chunked.convert_mel(src, refs, content_norm=1.0)
    assert out.shape == (vc.model.config.n_mels, frames)
    assert float((out - chunked.convert_mel(src, refs)).abs().mean()) > 0.01
    # The refs' stats are one piece per clip; the source's, one per chunk, the overlaps not counted twice.
    down = vc.model.config.downsample
    assert len(seen) == 2 + math.ceil(frames / 40)
    assert sum(seen[2:]) == math.ceil(frames / down), seen


def test_content_norm_needs_the_targets_frames_and_a_fraction(vc, model_dir, tmp_path, monkeypatch):
    src = torch.from_numpy(tone(150, 1.0))
    with monkeypatch.context() as m:  # a vector file made before content statistics, a voice with no matching set
        m.setattr(vc.vectors, "content", {})
        with pytest.raises(ValueError, match="content_norm: voice 'spk0' has no matching set.*voicevae vectors"):
            vc.convert(src, "spk0", content_norm=0.5)
    with pytest.raises(ValueError, match="content_norm needs the target's frames"):
        vc.convert(src, vc.vectors.speaker("spk0"), content_norm=0.5)
    with pytest.raises(ValueError, match=r"content_norm must be in \[0, 1\]"):
        vc.convert(src, [src], content_norm=1.5)
    with pytest.raises(ValueError, match="content_norm needs a target voice"):
        vc.convert_mel(src, None, content_norm=0.5)
    with monkeypatch.context() as m:  # a categorical content latent has codebook vectors, which must not move
        m.setattr(vc.model.config, "content_latent", "categorical")
        with pytest.raises(ValueError, match="content_norm needs a Gaussian content latent"):
            vc.convert(src, [src], content_norm=0.5)
    # The CLI: --content-norm with reference clips changes the output; a bad value writes nothing.
    sf.write(tmp_path / "src.wav", src.numpy(), RATE)
    sf.write(tmp_path / "ref.wav", tone(300, 1.0, level=0.05), RATE)
    args = ["convert", str(tmp_path / "src.wav"), "--model", str(model_dir), "--vocoder", "griffinlim"]
    args += ["--target-clips", str(tmp_path / "ref.wav")]
    cli_option_changes_the_output(args, "--content-norm", tmp_path)


def test_cloning_protocol_gives_each_add_on_what_it_needs(pitch_model_dir, tmp_path, monkeypatch):
    """The content-norm and F0-spread conditions reach `convert` with their option, and a bare
    zero-shot vector with the clips' matching set or melody spread (its only source of the target's
    statistics); the judges are stand-ins."""
    from conftest import edit_manifest, make_tone_corpus

    from voicevae import evaluate_cloning as protocol

    manifest = edit_manifest(make_tone_corpus(tmp_path / "corpus", speakers=2, clips=12), lambda r: r.update(split="test_voice"))

    class Judge:  # one embedding and one transcript for everything: only the wiring is under test
        def embed(self, wav, rate):
            return np.ones(4, dtype=np.float32) / 2

        def embed_many(self, wavs, rate):
            return np.stack([self.embed(w, rate) for w in wavs])

        def transcribe(self, wav, rate):
            return "clip"

    calls: list[tuple[VoiceConverter, object, dict]] = []
    convert = VoiceConverter.convert

    def spy(self, wav, target, *args, **options):
        calls.append((self, target, options))
        return convert(self, wav, target, *args, **options)

    monkeypatch.setattr(protocol, "SpeakerEncoder", Judge)
    monkeypatch.setattr(protocol, "Transcriber", Judge)
    monkeypatch.setattr(protocol, "f0_correlation", lambda *a: 0.0)
    monkeypatch.setattr(protocol, "median_f0", lambda *a: 200.0)
    monkeypatch.setattr(VoiceConverter, "convert", spy)
    vc = load(pitch_model_dir, vocoder="griffinlim", device="cpu")  # f0_spread needs the decoder's pitch input
    config = AdaptConfig(steps=1, min_seconds=1.0, segment_frames=32)
    report = protocol.evaluate_cloning(
        vc,
        manifest,
        budgets=[30.0],
        sources_per_voice=1,
        retrieval=[0.5],
        adapt_config=config,
        progress=False,
        content_norms=[1.0],
        f0_spreads=[0.5],
    )
    names = protocol.conditions([0.5], add_ons={"content_norm": [1.0], "f0_spread": [0.5]})
    assert len(calls) == 2 * len(names)  # two targets, one source clip each, every condition
    by_name = dict(zip(names, calls))
    for suffix, option, value in ((" + content norm 1", "content_norm", 1.0), (" + f0 spread 0.5", "f0_spread", 0.5)):
        for name in names:
            converter, target, options = by_name[name]
            plain = by_name[name.replace(suffix, "")]
            assert options.get(option, 0.0) == (value if suffix in name else 0.0), name
            assert converter is plain[0] and options.get("retrieval") == plain[2].get("retrieval"), name
    # Both options given: each plain condition also gets the two stacked.
    stacked = by_name["zero-shot + content norm 1 + f0 spread 0.5"][2]
    assert isinstance(stacked["matching"], MatchingSet) and math.isfinite(stacked["target_spread"])
    assert by_name["adapted + retrieval 0.5 + content norm 1 + f0 spread 0.5"][2]["retrieval"] == 0.5
    zero_shot = by_name["zero-shot + content norm 1"]
    assert zero_shot[0] is vc and isinstance(zero_shot[1], torch.Tensor)
    assert isinstance(zero_shot[2]["matching"], MatchingSet)
    adapted = by_name["adapted + content norm 1"]
    assert adapted[0] is not vc and adapted[1] == "spk0_adapted" and "matching" not in adapted[2]  # its stored statistics
    zero_shot = by_name["zero-shot + f0 spread 0.5"]
    # The melody spread of spk0's budget clips: all but its judges' and its source clips.
    pool = [u for u in read_manifest(manifest, split="test_voice") if u.speaker == "spk0"][: -protocol.JUDGE_CLIPS - 1]
    clips = [u.path for u in protocol.budget_clips(pool, 30.0)]
    assert zero_shot[2]["target_spread"] == pytest.approx(vc.target_spread(clips))
    adapted = by_name["adapted + f0 spread 0.5"]
    assert adapted[1] == "spk0_adapted" and "target_spread" not in adapted[2]  # its stored spread
    assert math.isfinite(adapted[0].vectors.f0["spk0_adapted"]["melody_octaves"])
    paired = {(c, b) for _, m, c, b, _ in report["differences"] if m == "similarity to target"}
    assert ("zero-shot + content norm 1", "zero-shot") in paired
    assert ("adapted + retrieval 0.5 + content norm 1", "adapted + retrieval 0.5") in paired
    assert ("zero-shot + f0 spread 0.5", "zero-shot") in paired
    assert ("adapted + content norm 1 + f0 spread 0.5", "adapted + content norm 1") in paired
    assert ("zero-shot + content norm 1 + f0 spread 0.5", "zero-shot + content norm 1") in paired
