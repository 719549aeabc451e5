"""Every benchmark script imports: a refactor that moves what a benchmark uses breaks this, not a later measurement."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _benchmark(stem: str) -> ModuleType:
    name = f"benchmark_{stem}"
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS[0].parent / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    # A dataclass looks its module up by name while it is being made.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_imports(path: Path) -> None:
    module = _benchmark(path.stem)  # runs the imports; main() waits behind __name__ == "__main__"
    assert callable(getattr(module, "main", None)), f"{path.name}: no main()"


def test_clone_likeness_warp_moves_a_formant_by_alpha() -> None:
    import torch

    from voicevae.config import MelConfig

    likeness = _benchmark("clone_likeness")
    warp = likeness.Warper(MelConfig())
    mel = torch.full((80, 5), -8.0)
    mel[30] = 0.0  # one spectral peak, at band 30's centre frequency
    assert torch.equal(warp(mel, 1.0), mel)
    raised = warp(mel, 1.2)  # a shorter vocal tract: every frequency x 1.2
    peak_hz = warp.centres[raised[:, 0].argmax()]
    assert abs(peak_hz / warp.centres[30] - 1.2) < 0.05
    # best_alpha recovers a warp it is shown (within the grid's step)
    assert abs(likeness.Warper(MelConfig()).best_alpha(mel, likeness.long_term_spectrum([raised])) - 1.2) < 0.03


def test_clone_likeness_global_variance_sets_the_spread() -> None:
    import torch

    likeness = _benchmark("clone_likeness")
    torch.manual_seed(0)
    mel = torch.randn(80, 200) - 3.0
    target_sd = torch.full((80,), 2.0)
    assert torch.allclose(likeness.global_variance(mel, target_sd, 0.0, -20.0), mel)
    matched = likeness.global_variance(mel, target_sd, 1.0, -20.0)
    assert torch.allclose(likeness.band_spread([matched]), target_sd, atol=1e-3)


def test_clone_likeness_content_matching_takes_the_targets_statistics() -> None:
    import torch

    likeness = _benchmark("clone_likeness")
    torch.manual_seed(0)
    z_c = torch.randn(1, 4, 300) * 0.5 + 1.0
    speech = torch.ones(300, dtype=torch.bool)
    target = torch.randn(4, 900) ** 3 * 2.0 - 1.0  # skewed, so the quantile map is not an affine one
    shifted = likeness.match_content(z_c, speech, target, "mean")[0]
    assert torch.allclose(shifted.mean(1), target.mean(1), atol=1e-4)
    assert torch.allclose(shifted.std(1), z_c[0].std(1), atol=1e-5)
    mapped = likeness.match_content(z_c, speech, target, "quantile")[0]
    assert torch.allclose(mapped.median(1).values, target.median(1).values, atol=0.1)
    assert torch.equal(mapped.argsort(1), z_c[0].argsort(1))  # the order of the frames is kept
    # The whitening and colouring map gives the frames the target's mean and full covariance,
    # correlations between channels included.
    mix = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, -0.5, 2.0]])
    correlated = mix @ torch.randn(4, 900) + 0.3
    coloured = likeness.match_content(z_c, speech, correlated, "wct")[0]
    assert torch.allclose(coloured.mean(1), correlated.mean(1), atol=1e-4)
    assert torch.allclose(torch.cov(coloured), torch.cov(correlated), atol=1e-3)


def test_clone_likeness_speaking_rate_counts_syllable_onsets_in_speech() -> None:
    import torch

    likeness = _benchmark("clone_likeness")
    # Leading silence, then four 10-frame voiced runs 5 frames apart, a 2-frame blip, a pause, one more run.
    voicing = [0] * 30 + ([1] * 10 + [0] * 5) * 3 + [1] * 10 + [0] * 4 + [1] * 2 + [0] * 40 + [1] * 10 + [0] * 20
    pitch = torch.zeros(1, 3, len(voicing))
    pitch[0, 1] = torch.tensor(voicing, dtype=torch.float32)
    # 5 onsets (the blip is too short to be one); speech: 50 voiced + 3 * 5 + 4 gap + 2 blip frames (not the pause).
    assert likeness.speaking_rate([pitch], 0.01) == 5 / 0.71
    # stretch lengthens in time, linearly.
    ramp = torch.arange(5.0).reshape(1, 1, 5)
    torch.testing.assert_close(likeness.stretch(ramp, 2.0), torch.linspace(0, 4, 10).reshape(1, 1, 10))


def test_clone_likeness_unit_melody_takes_each_speech_frames_melody_from_its_nearest_target_frame() -> None:
    import torch

    likeness = _benchmark("clone_likeness")
    torch.manual_seed(0)
    pitch = torch.randn(1, 3, 10)  # 10 mel frames: 3 latent frames of 4, the last padded
    speech = torch.tensor([True, False, True])
    target_blocks = torch.arange(2 * 3 * 4.0).reshape(2, 3, 4)  # 2 target latent frames
    unit = likeness.unit_melody(pitch, speech, torch.tensor([1, 0]), target_blocks)
    assert unit.shape == pitch.shape
    torch.testing.assert_close(unit[0, :2, :4], target_blocks[1, :2])  # latent frame 0 <- target frame 1
    torch.testing.assert_close(unit[0, :2, 8:], target_blocks[0, :2, :2])  # frame 2 <- target frame 0, cut to F
    torch.testing.assert_close(unit[0, :, 4:8], pitch[0, :, 4:8])  # not speech: the source's own
    torch.testing.assert_close(unit[0, 2], pitch[0, 2])  # the register row is never taken
    # The nearest frames are found on standardised latents: a source frame matches the target
    # frame at the same place in its own distribution, whatever the offset between the two.
    target = torch.randn(4, 60)
    shifted = target[:, :50] * 3.0 + 5.0
    assert torch.equal(
        likeness.nearest_frames(shifted, target, 1)[:, 0], likeness.nearest_frames(target[:, :50], target, 1)[:, 0]
    )


def test_clone_likeness_smooth_melody_keeps_the_slow_course_and_drops_the_wobble() -> None:
    import math

    import torch

    likeness = _benchmark("clone_likeness")
    frames = torch.arange(400.0)
    slow = 0.3 * torch.sin(2 * math.pi * frames / 200)  # a phrase's rise and fall
    pitch = torch.zeros(1, 3, 400)
    pitch[0, 0] = slow + 0.05 * torch.sign(torch.sin(math.pi * frames / 2))  # plus a 2-frame-period wobble
    pitch[0, 1] = 1.0
    out = likeness.smooth_melody(pitch, 5.0)
    assert (out[0, 0, 20:-20] - slow[20:-20]).abs().max() < 0.02
    torch.testing.assert_close(out[0, 1:], pitch[0, 1:])


def test_cloning_by_language_splits_a_runs_own_scores() -> None:
    by_language = _benchmark("cloning_by_language")
    # Four conversions: two within English, one English source into French, one French into English.
    pairs = [("en", "en"), ("en", "en"), ("fr", "en"), ("en", "fr")]
    scores = {
        "to_target": [0.9, 0.8, 0.6, 0.5],
        "to_source": [0.5, 0.85, 0.4, 0.6],
        "errors": [1, 2, 3, 4],
        "words": [4, 4, 4, 5],
    }
    report = {"scores": {"60.0": {"adapted": scores, "zero-shot": scores}}}
    rows = by_language.split_by_language(report, pairs, ["adapted"])
    assert list(rows["60.0"]) == ["adapted"]
    row = rows["60.0"]["adapted"]
    assert row["same"] == (pytest.approx(0.85), 0.5)
    assert row["other"] == (pytest.approx(0.55), 0.5)
    assert row["wer"] == {"en": pytest.approx(6 / 12), "fr": pytest.approx(4 / 5)}
    # No conversion within one language: no figure, not a NaN.
    assert by_language.split_by_language(report, [("en", "fr")] * 4)["60.0"]["adapted"]["same"] is None
    # Per pair of voices, the mean of its conversions.
    means = by_language.pair_means([0.9, 0.7, 0.6], [("a", "b"), ("a", "b"), ("b", "a")])
    assert means == {("a", "b"): pytest.approx(0.8), ("b", "a"): pytest.approx(0.6)}
