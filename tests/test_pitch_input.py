"""The decoder's intonation input (model.pitch_input): the contour, its cache, training and conversion with it."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import write_train_config as write_config

from voicevae.config import VAEConfig
from voicevae.model import VAE
from voicevae.pitch import f0_stats, intonation, intonation_spread, melody_spread, scale_melody
from voicevae.training.vae import load_config, train

RATE, HOP = 22050, 256


def glide(seconds: float, hz: float, octaves: float, silent_from: float | None = None) -> np.ndarray:
    """A harmonic tone whose F0 swings `octaves` either side of `hz` once a second."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = hz * 2 ** (octaves * np.sin(2 * np.pi * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = 0.3 * sum(np.sin(k * phase) / k for k in range(1, 20))
    if silent_from is not None:
        x[int(silent_from * RATE) :] = 0
    return x.astype(np.float32)


def test_intonation_follows_the_melody_relative_to_the_clips_mean():
    frames = 86
    contour = intonation(torch.from_numpy(glide(1.0, 150, 0.5, silent_from=0.8)), RATE, frames, HOP)
    assert contour.shape == (3, frames)
    voiced = contour[1].numpy() > 0
    assert voiced[:60].all() and not voiced[75:].any()  # the silent end is unvoiced
    # The same melody an octave up gives the same contour: the register is not in it.
    higher = intonation(torch.from_numpy(glide(1.0, 300, 0.5, silent_from=0.8)), RATE, frames, HOP)
    assert (contour[0] - higher[0])[voiced].abs().max() < 0.05
    # The register is row 2 instead: the clip's mean log2 F0, an octave apart here.
    assert (higher[2] == higher[2, 0]).all() and float(higher[2, 0] - contour[2, 0]) == pytest.approx(1.0, abs=0.02)
    # Over the voiced 0.8 s the swing's mean is 0.5 (1 - cos 1.6 pi) / 1.6 pi octaves above 150 Hz.
    swing = 0.5 * (1 - math.cos(1.6 * math.pi)) / (1.6 * math.pi)
    assert float(contour[2, 0]) == pytest.approx(math.log2(150) + swing, abs=0.02)
    mel_t = (np.arange(frames) + 0.5) * HOP / RATE
    truth = 0.5 * np.sin(2 * np.pi * mel_t)
    assert np.corrcoef(truth[voiced], contour[0].numpy()[voiced])[0, 1] > 0.99
    assert abs(float(contour[0][voiced].mean())) < 0.05
    assert not intonation(torch.zeros(RATE), RATE, frames, HOP).any()  # nothing voiced: zeros


def test_the_decoder_reads_the_contour_and_old_models_are_unchanged():
    torch.manual_seed(0)
    plain = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4))
    assert plain.decoder.pitch is None
    model = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4, pitch_input=True)).eval()
    mel = torch.randn(1, 80, 31)
    up, down = torch.zeros(1, 2, 31), torch.zeros(1, 2, 31)
    up[:, 0], down[:, 0], up[:, 1], down[:, 1] = 0.5, -0.5, 1, 1
    speaker = torch.zeros(4)
    a, b = model.convert(mel, speaker, pitch=up), model.convert(mel, speaker, pitch=down)
    assert a.shape == mel.shape and not torch.allclose(a, b)
    # No contour: the flat unvoiced one (zeros), the same as giving zeros.
    torch.testing.assert_close(model.convert(mel, speaker), model.convert(mel, speaker, pitch=torch.zeros(1, 2, 31)))


def test_training_with_the_contour_caches_it_and_saves_the_setting(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=2)
    train(load_config(config, ["model.pitch_input=true"]), progress=False)
    model = VAE.load(tmp_path / "run" / "model.pt")
    assert model.config.pitch_input and model.decoder.pitch is not None
    caches = sorted(p.name for p in (tmp_path / "cache").glob("pitch-*.pt"))
    assert len(caches) == 2  # train and valid splits
    # A second run reads the caches instead of tracking every clip again.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("pitch-*.pt")}
    train(load_config(config, ["model.pitch_input=true", f"out_dir={tmp_path / 'again'}"]), progress=False)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("pitch-*.pt")} == before


def test_conversion_and_adaptation_read_the_contour(tone_corpus):

    from voicevae.api import VoiceConverter
    from voicevae.config import AdaptConfig
    from voicevae.corpora import read_manifest
    from voicevae.training.adapt import adapt
    from voicevae.vectors import compute_vectors
    from voicevae.vocoder import load_vocoder

    torch.manual_seed(0)
    model = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4, pitch_input=True))
    vectors = compute_vectors(model, read_manifest(tone_corpus), is_samples=2, f0_clips=0, progress=False)
    vc = VoiceConverter(model, vectors, load_vocoder("griffinlim"))
    rising, falling = glide(1.0, 150, 0.5), glide(1.0, 150, 0.5)[::-1].copy()
    mel = vc.mel(torch.from_numpy(rising))
    # The same log-mel decoded with two melodies differs only through the contour.
    a = vc.decode_with_speaker(mel, vectors.speaker("spk0"), vc.intonation(torch.from_numpy(rising), mel.shape[-1]))
    b = vc.decode_with_speaker(mel, vectors.speaker("spk0"), vc.intonation(torch.from_numpy(falling), mel.shape[-1]))
    assert not torch.allclose(a, b)
    # convert_mel feeds the source's own contour: the same as decoding with it by hand.
    torch.testing.assert_close(
        vc.convert_mel(torch.from_numpy(rising), None),
        vc.decode_with_speaker(
            mel, vc.encode_speaker(torch.from_numpy(rising)), vc.intonation(torch.from_numpy(rising), mel.shape[-1])
        ),
    )
    # Adaptation reads the new voice's own contours.
    adapted = adapt(model, vectors, [torch.from_numpy(rising)] * 12, "new", AdaptConfig(steps=2), progress=False)
    assert "new" in adapted.vectors.speakers


def test_batches_crop_the_contour_where_they_crop_the_mel():
    from voicevae.config import DataConfig
    from voicevae.data import MelCorpus, SpeakerBalancedBatches

    lengths = [40, 9, 25]  # one clip shorter than the segment: padded, its contour with zeros
    mels = [torch.arange(n, dtype=torch.float16).expand(3, n).clone() for n in lengths]
    pitch = [torch.stack([torch.arange(n, dtype=torch.float16), torch.ones(n, dtype=torch.float16)]) for n in lengths]
    corpus = MelCorpus(mels, ["a", "b", "c"], [""] * 3, ["x"] * 3, pitch=pitch)
    batches = SpeakerBalancedBatches(corpus, DataConfig(segment_frames=16, speakers_per_batch=3, clips_per_speaker=2), -11.5, 0)
    for _ in range(5):
        mel, _, _, contour = batches.next()
        assert contour is not None and contour.shape == (6, 2, 16)
        real = contour[:, 1] > 0
        torch.testing.assert_close(contour[:, 0][real], mel[:, 0][real])
        assert (mel[:, 0][~real] == -11.5).all() and (contour[:, 0][~real] == 0).all()


def test_melody_spread_is_the_contours_range_about_each_clips_own_mean():
    low, high = glide(2.0, 120, 0.25), glide(2.0, 240, 0.25)
    # An F0 swinging a octaves as a sine has a log-F0 spread of a / sqrt(2).
    assert melody_spread([low, high], RATE) == pytest.approx(0.25 / math.sqrt(2), rel=0.1)
    assert melody_spread([glide(2.0, 150, 0.5)], RATE) == pytest.approx(0.5 / math.sqrt(2), rel=0.1)
    # Two registers an octave apart: pYIN's pooled spread counts the octave, the melody's does not.
    stats = f0_stats([low, high], RATE)
    assert stats["std_semitones"] > 5 and stats["melody_octaves"] == pytest.approx(melody_spread([low, high], RATE))
    # The decoder's input measures the same spread, and scale_melody moves only its melody row.
    pitch = intonation(low, RATE, 172, HOP)
    assert intonation_spread(pitch) == pytest.approx(melody_spread([low], RATE), rel=0.05)
    wider = scale_melody(pitch, 2.0)
    torch.testing.assert_close(wider[0], 2 * pitch[0])
    torch.testing.assert_close(wider[1:], pitch[1:])
    with pytest.raises(ValueError, match="too little voiced speech"):
        melody_spread([np.zeros(RATE, dtype=np.float32)], RATE)
    assert intonation_spread(torch.zeros(3, 50)) is None


def test_f0_spread_moves_the_melody_the_decoder_follows_to_the_targets_range(pitch_model_dir, monkeypatch):
    from voicevae.api import MAX_MELODY_SCALE, load

    vc = load(pitch_model_dir, vocoder="griffinlim", device="cpu")
    src = torch.from_numpy(glide(2.0, 150, 0.1))
    refs = [torch.from_numpy(glide(2.0, 220, 0.4)), torch.from_numpy(glide(1.5, 200, 0.3))]
    seen = []  # the intonation each conversion decodes with
    decode = vc.decode_with_speaker
    monkeypatch.setattr(
        vc, "decode_with_speaker", lambda mel, z, pitch=None, **kw: seen.append(pitch) or decode(mel, z, pitch, **kw)
    )
    plain, full, half = (vc.convert_mel(src, refs, f0_spread=s) for s in (0.0, 1.0, 0.5))
    own, wanted = intonation_spread(seen[0]), melody_spread(refs, RATE)
    assert wanted > 2 * own  # the target's melody is much livelier
    assert intonation_spread(seen[1]) == pytest.approx(wanted, rel=1e-4)
    assert intonation_spread(seen[2]) == pytest.approx(math.sqrt(own * wanted), rel=1e-4)  # half way, in log ratio
    torch.testing.assert_close(seen[1][:, 1:], seen[0][:, 1:])  # voicing and register untouched
    assert not torch.allclose(plain, full)
    # A named voice's spread is stored in the vector file; a bare vector needs it given.
    stored = vc.vectors.f0["spk2"]["melody_octaves"]
    assert math.isfinite(stored)
    vc.convert_mel(src, "spk2", f0_spread=1.0)
    assert intonation_spread(seen[-1]) == pytest.approx(stored, rel=1e-4)
    vc.convert_mel(src, vc.vectors.speaker("spk2"), f0_spread=1.0, target_spread=0.2)
    assert intonation_spread(seen[-1]) == pytest.approx(0.2, rel=1e-4)
    # A near-monotone source is scaled by at most MAX_MELODY_SCALE: its wobble does not become a melody.
    vc.convert_mel(src, refs, f0_spread=1.0, target_spread=100 * own)
    assert intonation_spread(seen[-1]) == pytest.approx(MAX_MELODY_SCALE * own, rel=1e-4)
    # `detail` adds back what the VAE loses of the source as it is: decoded with its own melody.
    seen.clear()
    vc.convert_mel(src, refs, f0_spread=1.0, detail=1.0)
    assert intonation_spread(seen[0]) == pytest.approx(wanted, rel=1e-4)
    assert intonation_spread(seen[1]) == pytest.approx(own, rel=1e-4)
    # convert hands both on to convert_mel.
    vc.convert(src, refs, f0_spread=1.0)
    assert intonation_spread(seen[-1]) == pytest.approx(wanted, rel=1e-4)


def test_f0_spread_refuses_what_it_cannot_measure(pitch_model_dir, monkeypatch, tmp_path):
    from conftest import cli_option_changes_the_output

    from voicevae.api import load

    vc = load(pitch_model_dir, vocoder="griffinlim", device="cpu")
    src = torch.from_numpy(glide(1.0, 150, 0.1))
    noise = 0.05 * torch.randn(RATE, generator=torch.Generator().manual_seed(0))  # no pitch anywhere: a whisper
    with pytest.raises(ValueError, match="f0_spread needs the target's melody.*not a vector"):
        vc.convert_mel(src, vc.vectors.speaker("spk2"), f0_spread=0.5)
    with pytest.raises(ValueError, match=r"f0_spread must be in \[0, 1\]"):
        vc.convert_mel(src, "spk2", f0_spread=1.5)
    with pytest.raises(ValueError, match="f0_spread needs a target voice"):
        vc.convert_mel(src, None, f0_spread=0.5)
    for bad in (-0.1, math.nan):
        with pytest.raises(ValueError, match="target_spread must be a spread in octaves above 0"):
            vc.convert_mel(src, vc.vectors.speaker("spk2"), f0_spread=0.5, target_spread=bad)
    with pytest.raises(ValueError, match="unknown voice 'spk9'"):  # a typo is a typo, not a missing spread
        vc.convert_mel(src, "spk9", f0_spread=0.5)
    with pytest.raises(ValueError, match="f0_spread: the reference clips: too little voiced speech"):
        vc.convert_mel(src, [noise], f0_spread=0.5)
    with monkeypatch.context() as m:  # a vector file made before f0_spread
        m.setitem(vc.vectors.f0, "spk2", {k: v for k, v in vc.vectors.f0["spk2"].items() if k != "melody_octaves"})
        with pytest.raises(ValueError, match="no melody spread for voice 'spk2'.*voicevae vectors"):
            vc.convert_mel(src, "spk2", f0_spread=0.5)
    with monkeypatch.context() as m:  # the decoder takes no melody to scale
        m.setattr(vc.model.config, "pitch_input", False)
        with pytest.raises(ValueError, match="f0_spread needs a model with a pitch input"):
            vc.convert_mel(src, "spk2", f0_spread=0.5)
    with pytest.warns(UserWarning, match="too few voiced frames"):  # a whisper: nothing to scale
        vc.convert_mel(noise, "spk2", f0_spread=0.5)
    # The CLI (through the batch): --f0-spread with reference clips changes the output; a bad value writes nothing.
    sf.write(tmp_path / "src.wav", src.numpy(), RATE)
    sf.write(tmp_path / "ref.wav", glide(1.5, 220, 0.4), RATE)
    args = ["convert", str(tmp_path / "src.wav"), "--model", str(pitch_model_dir), "--vocoder", "griffinlim"]
    cli_option_changes_the_output([*args, "--target-clips", str(tmp_path / "ref.wav")], "--f0-spread", tmp_path)


def test_rapt_tracks_a_clip_the_same_whatever_was_tracked_before():
    # In a fresh process, as SPTK's state is per process: a clip tracked before and after an
    # odd-length one (which once left RAPT tracking every later call a little differently).
    import subprocess
    import sys
    from pathlib import Path

    code = (
        f"import numpy as np; from voicevae.pitch import rapt_f0, to_track_rate; import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from test_pitch_input import glide; x = to_track_rate(glide(1.0, 150, 0.2), 22050); before = rapt_f0(x); "
        "odd = to_track_rate(glide(2.0, 180, 0.2), 22050)[:24073]; assert rapt_f0(odd).size == 151; "
        "print(float(np.abs(rapt_f0(x) - before).max()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout.split()[-1]) == 0.0
