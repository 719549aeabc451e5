"""The anomaly score's likelihood ratio: the stationary baseline, the vector file's threshold, the API."""

import dataclasses
import math

import pytest
import torch

from voicevae.api import VoiceConverter
from voicevae.complexity import stationary_log_likelihood
from voicevae.model import VAE
from voicevae.vectors import VectorSet
from voicevae.vocoder import load_vocoder


@pytest.fixture(scope="module")
def vc(model_dir) -> VoiceConverter:
    model = VAE.load(model_dir / "model.pt")
    return VoiceConverter(model, VectorSet.load(model_dir / "vectors.pt", model), load_vocoder("griffinlim"))


def test_stationary_log_likelihood_is_the_fitted_gaussians():
    torch.manual_seed(0)
    std = torch.linspace(0.5, 2.0, 80)
    mel = torch.randn(80, 4000) * std[:, None] - 3.0
    expected = -0.5 * float((torch.log(2 * math.pi * std**2) + 1).sum())
    assert stationary_log_likelihood(mel, window=mel.shape[-1]) == pytest.approx(expected, abs=0.5)
    # A steady spectrum is simple, one that moves from frame to frame is not.
    steady = torch.full((80, 200), -4.0) + 0.01 * torch.randn(80, 200)
    moving = torch.randn(80, 200) * 2
    assert stationary_log_likelihood(steady) > stationary_log_likelihood(moving) + 100
    # A bin that never moves is bounded by the variance floor, not infinite.
    assert math.isfinite(stationary_log_likelihood(torch.zeros(80, 50)))


def test_stationary_log_likelihood_does_not_drift_with_length():
    # A spectrum that wanders (as speech's does) spreads further the longer the clip: fitted
    # to the whole clip, the baseline would fall with length; fitted per window it stays.
    torch.manual_seed(0)
    walk = torch.randn(80, 640).cumsum(-1) * 0.3
    short, long = walk[:, :128], walk
    assert abs(stationary_log_likelihood(long) - stationary_log_likelihood(short)) < 10
    whole = stationary_log_likelihood(long, window=640)
    assert stationary_log_likelihood(short, window=640) - whole > 40
    # A last stretch under half a window joins the one before instead of being fitted alone.
    tail = torch.cat([short, walk[:, 128:131]], -1)
    assert stationary_log_likelihood(tail) == pytest.approx(stationary_log_likelihood(tail, window=131))


@pytest.mark.parametrize("shape", [(80,), (80, 1), (1, 80, 10)])
def test_stationary_log_likelihood_refuses_other_shapes(shape):
    with pytest.raises(ValueError, match="n_mels, F >= 2"):
        stationary_log_likelihood(torch.zeros(shape))


def test_likelihood_ratio_is_log_px_minus_the_baseline(vc, tone_corpus):
    wav = vc.load_audio(tone_corpus.parent / "spk1" / "clip1.wav")
    torch.manual_seed(1)
    ratio = vc.likelihood_ratio(wav, n_samples=2)
    torch.manual_seed(1)
    log_px = vc.score(wav, n_samples=2)
    assert ratio == pytest.approx(log_px - stationary_log_likelihood(vc.mel(wav)), abs=1e-4)
    torch.manual_seed(1)
    assert vc.scores(wav, n_samples=2) == pytest.approx((log_px, ratio), abs=1e-4)


def test_threshold_is_set_on_the_ratios_of_the_reference_clips(model_dir, tmp_path):
    vs = VectorSet.load(model_dir / "vectors.pt")
    assert vs.frame_baselines is not None and vs.frame_baselines.shape == vs.frame_scores.shape
    ratios = vs.frame_scores - vs.frame_baselines
    assert vs.anomaly_threshold(quantile=0.0, margin=0.0) == pytest.approx(float(ratios.min()))
    assert vs.anomaly_threshold(quantile=1.0, margin=1.0) == pytest.approx(float(ratios.max()) - 1.0)
    # A file from before the ratio keeps working but flags nothing, and says so.
    dataclasses.replace(vs, frame_baselines=None).save(tmp_path / "old.pt")
    with pytest.warns(UserWarning, match="old.pt: made before the likelihood-ratio anomaly score"):
        old = VectorSet.load(tmp_path / "old.pt")
    vc = VoiceConverter(VAE.load(model_dir / "model.pt"), old, load_vocoder("griffinlim"))
    assert vc.anomaly_threshold == -math.inf


def test_a_vector_file_is_made_the_same_each_time(vc, tone_corpus):
    # The scores are importance-sampled: a fixed seed makes the threshold reproducible,
    # and the caller's random state is left alone.
    from voicevae.corpora import read_manifest
    from voicevae.vectors import compute_vectors

    utts = read_manifest(tone_corpus)[:4]
    torch.manual_seed(123)
    untouched = torch.rand(1)
    torch.manual_seed(123)
    first = compute_vectors(vc.model, utts, is_samples=2, progress=False, f0_clips=0)
    assert torch.equal(torch.rand(1), untouched)
    second = compute_vectors(vc.model, utts, is_samples=2, progress=False, f0_clips=0)  # from another random state
    assert torch.equal(first.frame_scores, second.frame_scores)
    other = compute_vectors(vc.model, utts, is_samples=2, progress=False, f0_clips=0, seed=1)
    assert not torch.equal(other.frame_scores, first.frame_scores)


def test_vector_file_baselines_are_the_api_s(vc, model_dir, tone_corpus):
    # The threshold is set on the vector file's ratios and applied to VoiceConverter's: both
    # baselines must come from the same mel of the same clip.
    from voicevae.corpora import read_manifest

    utts = read_manifest(tone_corpus)
    vs = VectorSet.load(model_dir / "vectors.pt")
    assert vs.frame_baselines is not None and len(utts) == len(vs.frame_baselines)
    for u, baseline in zip(utts, vs.frame_baselines):
        assert float(baseline) == pytest.approx(stationary_log_likelihood(vc.mel(vc.load_audio(u.path))), abs=1e-3)


def test_an_added_voice_keeps_the_threshold(vc):
    from voicevae.training.adapt import add_voice

    dim = vc.model.config.speaker_dim
    voices = add_voice(vc.vectors, vc.model, "new", torch.zeros(dim), torch.zeros(3, dim))
    assert voices.frame_baselines is vc.vectors.frame_baselines
    assert voices.anomaly_threshold() == vc.vectors.anomaly_threshold() > -math.inf
