"""The harmonic source (model.harmonic_source): the comb, the decoder's use of it, the register head."""

import math

import numpy as np
import pytest
import torch
from conftest import write_train_config as write_config
from scipy.ndimage import gaussian_filter1d

from voicevae.config import ConfigError, MelConfig, VAEConfig
from voicevae.features import MelFrontend, bins_below
from voicevae.harmonics import HarmonicComb
from voicevae.model import VAE
from voicevae.training.elbo import elbo_terms, register_loss
from voicevae.training.vae import load_config, train

MEL = MelConfig()
LOW = bins_below(MEL, 1000.0)  # where harmonics are resolved


def ripple_of_a_buzz(hz: float) -> np.ndarray:
    """Low-band log-mel ripple (LOW,) of a sawtooth-like buzz at `hz`: its log-mel minus a mel-axis blur."""
    t = np.arange(MEL.sample_rate // 2) / MEL.sample_rate
    x = sum(np.sin(2 * np.pi * k * hz * t + k) / k for k in range(1, int(8000 / hz)))
    mel = MelFrontend(MEL)(torch.from_numpy(0.1 * x).float())[:, 10:30].mean(-1).numpy()
    return (mel - gaussian_filter1d(mel, 3.0, mode="nearest"))[:LOW]


def test_the_comb_puts_its_peaks_where_a_real_tone_has_its_harmonics():
    comb = HarmonicComb(MEL)

    def fit(f0: float, truth: np.ndarray) -> float:
        row = comb(torch.full((1, 1), math.log2(f0)), torch.ones(1, 1))[0, :LOW, 0].numpy()
        return float(np.corrcoef(row, truth)[0, 1])

    for hz in (90.0, 140.0, 220.0):  # higher voices have too few harmonics below 1 kHz to tell a semitone
        truth = ripple_of_a_buzz(hz)
        # Right F0: the comb follows the tone's ripple; a semitone off, it falls out of step.
        assert fit(hz, truth) > 0.7, hz
        semitone = 2 ** (1 / 12)
        assert max(fit(hz * semitone, truth), fit(hz / semitone, truth)) < fit(hz, truth) - 0.3, hz
        # It fits best within a table row (1/96 octave) of the tone's F0, searching a semitone either side.
        steps = range(-8, 9)
        best = max(steps, key=lambda k: fit(hz * 2 ** (k / 96), truth))
        assert abs(best) <= 1, (hz, best)
    # Shapes, and nothing at all where the frame is unvoiced.
    out = comb(torch.full((2, 5), math.log2(150.0)), torch.tensor([[1.0, 1, 0, 0, 1]] * 2))
    assert out.shape == (2, MEL.n_mels, 5)
    assert (out[:, :, 2:4] == 0).all() and out[:, :LOW, 0].abs().max() > 0.5


def harmonic_model() -> VAE:
    torch.manual_seed(0)
    cfg = VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4, pitch_input=True, harmonic_source=True)
    return VAE(cfg).eval()


def contour(frames: int, register_hz: float, voiced: bool = True) -> torch.Tensor:
    pitch = torch.zeros(1, 3, frames)
    pitch[:, 1], pitch[:, 2] = float(voiced), math.log2(register_hz)
    return pitch


def test_the_decoder_adds_the_comb_where_voiced_and_conversion_takes_the_targets_register():
    model = harmonic_model()
    with pytest.raises(ConfigError, match="harmonic_source: needs model.pitch_input"):
        VAEConfig(harmonic_source=True).validate()
    mel, speaker = torch.randn(1, 80, 31), torch.zeros(1, 4)
    z_c = model.encode(mel).content.mu

    def decode(pitch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model.decode(z_c, speaker, 31, pitch)

    # The clip's own register places the comb: another register, another output; unvoiced, no comb at all.
    assert not torch.allclose(decode(contour(31, 120.0)), decode(contour(31, 240.0)))
    torch.testing.assert_close(decode(contour(31, 120.0, voiced=False)), decode(contour(31, 240.0, voiced=False)))
    # A conversion ignores the source's register and takes the one the target's latent gives.
    with torch.no_grad():
        model.decoder.register_head.bias.fill_(math.log2(200.0))
    a = model.convert(mel, speaker[0], pitch=contour(31, 120.0))
    torch.testing.assert_close(a, model.convert(mel, speaker[0], pitch=contour(31, 300.0)))
    torch.testing.assert_close(a, decode(contour(31, 200.0)))
    moved = model.with_register(contour(31, 120.0), torch.zeros(3, 4))
    assert moved.shape == (3, 3, 31) and torch.allclose(moved[:, 2], torch.tensor(math.log2(200.0)))
    assert model.with_register(contour(31, 120.0).repeat(3, 1, 1), torch.zeros(1, 4)).shape == (3, 3, 31)
    with pytest.raises(ValueError, match="intonation batch 2 and speaker batch 3 differ"):
        model.with_register(contour(31, 120.0).repeat(2, 1, 1), torch.zeros(3, 4))
    # The comb's F0 is the melody (row 0) around the register (row 2): with the melody input
    # itself silenced, an octave up in the melody is an octave up in the register.
    with torch.no_grad():
        model.decoder.pitch.weight.zero_()
    up = contour(31, 120.0)
    up[:, 0] = 1.0
    torch.testing.assert_close(decode(up), decode(contour(31, 240.0)))
    assert not torch.allclose(decode(up), decode(contour(31, 120.0)))


def test_the_register_head_learns_from_voiced_clips_only():
    model = harmonic_model()
    z_s = torch.zeros(2, 4)
    with torch.no_grad():
        model.decoder.register_head.bias.fill_(math.log2(150.0))
    pitch = torch.cat([contour(8, 150.0), contour(8, 600.0, voiced=False)])
    assert register_loss(model, z_s, pitch).item() == pytest.approx(0.0, abs=1e-6)  # the unvoiced clip is left out
    pitch = torch.cat([contour(8, 300.0), contour(8, 600.0, voiced=False)])
    assert register_loss(model, z_s, pitch).item() == pytest.approx(144.0, rel=1e-4)  # an octave: 12 semitones, squared
    # The ELBO reports it, and its gradient reaches the head.
    model.train()
    terms = elbo_terms(model, torch.randn(2, 80, 16), pitch=torch.cat([contour(16, 300.0), contour(16, 200.0)]))
    terms["pitch/register"].backward()
    assert model.decoder.register_head.bias.grad is not None and model.decoder.register_head.bias.grad.abs() > 0


def test_training_a_harmonic_source_needs_the_register_weight_and_refreshes_an_old_contour_cache(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=2)
    on = ["model.pitch_input=true", "model.harmonic_source=true"]
    with pytest.raises(ConfigError, match="lambdas.pitch/register"):
        load_config(config, on)
    # A contour cache written before the register row existed is tracked again, not misread.
    train(load_config(config, ["model.pitch_input=true", f"out_dir={tmp_path / 'plain'}"]), progress=False)
    for cache in (tmp_path / "cache").glob("pitch-*.pt"):
        data = torch.load(cache, weights_only=True)
        torch.save({**data, "pitch": [p[:2] for p in data["pitch"]]}, cache)
    weights = ["lambdas.rec/nll=1.0", "lambdas.kl/content=1.0", "lambdas.kl/speaker=1.0", "lambdas.pitch/register=1.0"]
    train(load_config(config, [*on, *weights]), progress=False)
    for cache in (tmp_path / "cache").glob("pitch-*.pt"):
        assert all(p.shape[0] == 3 for p in torch.load(cache, weights_only=True)["pitch"])
    model = VAE.load(tmp_path / "run" / "model.pt")
    assert model.config.harmonic_source and model.decoder.comb is not None
    header, *rows = (tmp_path / "run" / "train.csv").read_text().splitlines()
    column = header.split(",").index("pitch/register")
    assert float(rows[-1].split(",")[column]) > 0  # logged with the other terms


def test_adapting_a_harmonic_model_learns_the_new_voices_register(tone_corpus):
    from test_pitch_input import glide

    from voicevae.config import AdaptConfig
    from voicevae.corpora import read_manifest
    from voicevae.training.adapt import adapt
    from voicevae.vectors import compute_vectors

    model = harmonic_model()
    with torch.no_grad():  # a trained head reads the register off z_s; the fresh one reads a constant
        model.decoder.register_head.weight.normal_(0.0, 0.5)
    vectors = compute_vectors(model, read_manifest(tone_corpus), is_samples=2, f0_clips=0, progress=False)
    clips = [torch.from_numpy(glide(1.0, 220.0, 0.1)) for _ in range(12)]

    def error(adapted: VAE, voice: torch.Tensor) -> float:
        return abs(12 * (float(adapted.decoder.register(voice[None])[0]) - math.log2(220.0)))

    done = [
        adapt(model, vectors, clips, "new", AdaptConfig(steps=40, lambdas=lambdas), progress=False)
        for lambdas in ({"rec/nll": 1.0, "pitch/register": 1.0}, {"rec/nll": 1.0})
    ]
    with_term, without = (error(a.model, a.vectors.speaker("new")) for a in done)
    assert with_term < 1.0 and without > 2.0, (with_term, without)
    assert [r["pitch/register"] for r in done[0].log][-1] < done[0].log[0]["pitch/register"]


def test_resynthesis_keeps_the_clips_register_and_conversion_takes_the_targets(tone_corpus):
    from test_pitch_input import glide

    from voicevae.api import VoiceConverter
    from voicevae.corpora import read_manifest
    from voicevae.vectors import compute_vectors
    from voicevae.vocoder import load_vocoder

    model = harmonic_model()
    with torch.no_grad():
        model.decoder.register_head.bias.fill_(math.log2(400.0))  # far from the clip's 150 Hz
    vectors = compute_vectors(model, read_manifest(tone_corpus), is_samples=2, f0_clips=0, progress=False)
    vc = VoiceConverter(model, vectors, load_vocoder("griffinlim"))
    wav = torch.from_numpy(glide(1.0, 150.0, 0.2))
    mel, own = vc.mel(wav), vc.encode_speaker(wav)
    contour = vc.intonation(wav, mel.shape[-1])
    resynthesis = vc.convert_mel(wav, None)
    torch.testing.assert_close(resynthesis, vc.decode_with_speaker(mel, own, contour, own_register=True))
    # The same latent given as a target is a conversion: the head's register, here 400 Hz.
    torch.testing.assert_close(vc.convert_mel(wav, own), vc.decode_with_speaker(mel, own, contour))
    assert not torch.allclose(resynthesis, vc.convert_mel(wav, own))
