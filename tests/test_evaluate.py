"""The evaluation protocol end to end on the tone corpus (no held-out voices there)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from voicevae.api import VoiceConverter
from voicevae.config import VAEConfig
from voicevae.corpora import read_manifest
from voicevae.evaluate import evaluate, non_speech_clips, to_markdown
from voicevae.metrics import f0_spread, f0_track
from voicevae.model import VAE
from voicevae.vectors import compute_vectors
from voicevae.vocoder import load_vocoder


def test_non_speech_clips_are_fixed_and_finite():
    a, b = non_speech_clips(22050), non_speech_clips(22050)
    assert set(a) == {"white-noise", "pink-noise", "tone-chord", "melody", "clicks", "hum"}
    for k in a:
        assert torch.equal(a[k], b[k]) and torch.isfinite(a[k]).all() and 0 < a[k].abs().max() <= 0.3 + 1e-6


@pytest.fixture
def vc(tone_corpus) -> VoiceConverter:
    """An untrained small model with vectors from the tone corpus and Griffin-Lim."""
    torch.manual_seed(0)
    model = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4))
    vectors = compute_vectors(model, read_manifest(tone_corpus, split="train"), is_samples=2, progress=False)
    return VoiceConverter(model, vectors, load_vocoder("griffinlim"))


@pytest.mark.slow
def test_protocol_runs_and_reports_every_measure(vc, tone_corpus):
    results = evaluate(vc, tone_corpus, max_pairs=3, is_samples=2, progress=False, group_by="gender")
    seen = results["seen voices"]
    # Per-group rates split the pooled rate by the source's label, so the
    # pooled rate is a weighted mean of them.
    sources = read_manifest(tone_corpus, split="valid")
    for kind in ("converted", "source", "resynthesized source"):
        per_group = {k: v for k, v in seen.items() if k.startswith(f"WER {kind} [")}
        assert set(per_group) == {f"WER {kind} [gender={u.labels['gender']}]" for u in sources}
        assert min(per_group.values()) - 1e-9 <= seen[f"WER {kind}"] <= max(per_group.values()) + 1e-9
    with pytest.raises(ValueError, match="accent"):
        evaluate(vc, tone_corpus, max_pairs=3, is_samples=2, progress=False, group_by="accent")
    assert seen["conversions"] == 3
    assert 0.0 <= seen["closer to target (share)"] <= 1.0
    assert -1.0 <= seen["similarity to target"] <= 1.0
    assert seen["WER source"] >= 0 and seen["WER converted"] >= 0 and seen["WER resynthesized source"] >= 0
    lik = results["likelihood"]
    assert 0.0 <= lik["AUROC speech vs non-speech (training voices)"] <= 1.0
    assert 0.0 <= lik["AUROC speech vs non-speech (all voices)"] <= 1.0
    assert lik["highest non-speech log p(x) / frame"] >= lik["non-speech log p(x) / frame"]
    assert math.isfinite(lik["held-out log p(x) / frame (valid)"])
    assert "unseen voices (few-shot)" not in results
    table = to_markdown(results)
    assert "| closer to target (share) |" in table and "**likelihood**" in table


@pytest.mark.slow
def test_every_conversion_uses_the_requested_strength_method_and_content_norm(vc, tone_corpus, monkeypatch):
    calls, convert = [], vc.convert

    def spy(wav, target, **kwargs):
        calls.append((kwargs.get("strength", 1.0), kwargs.get("method", "arithmetic"), kwargs.get("content_norm", 0.0)))
        return convert(wav, target, **kwargs)

    monkeypatch.setattr(vc, "convert", spy)
    settings = dict(strength=0.4, method="stats", content_norm=0.5)
    seen = evaluate(vc, tone_corpus, max_pairs=3, is_samples=2, progress=False, **settings)["seen voices"]
    assert seen["conversions"] == 3 and calls == [(0.4, "stats", 0.5)] * 3
    with pytest.raises(ValueError, match="'average'"):
        evaluate(vc, tone_corpus, max_pairs=3, is_samples=2, progress=False, method="average")
    assert len(calls) == 3  # refused before any work


def test_sources_cover_every_voice_before_repeating_one():
    from pathlib import Path

    from voicevae.corpora import Utterance
    from voicevae.evaluate import spread

    # Listed speaker by speaker, as manifests are.
    utts = [Utterance(Path(f"{s}_{i}.wav"), s, "text") for s in ("b", "a", "c") for i in range(3 if s != "c" else 1)]
    chosen = spread(utts, 5)
    assert [u.speaker for u in chosen] == ["a", "b", "c", "a", "b"]
    assert [u.path.name for u in chosen[:2]] == ["a_0.wav", "b_0.wav"] and chosen[3].path.name == "a_1.wav"
    assert len(spread(utts, 100)) == len(utts) and spread([], 4) == []


def _heldout_tone_corpus(root):
    """Four tone voices with four clips each; spk2 and spk3 are held out from training."""
    from conftest import edit_manifest, make_tone_corpus

    def hold_out(r: dict) -> None:
        if r["speaker"] in ("spk2", "spk3"):
            r["split"] = "test_voice"

    return edit_manifest(make_tone_corpus(root, speakers=4, clips=4), hold_out)


@pytest.mark.slow
def test_unseen_protocol_keeps_reference_clips_out_and_pairs_models(tmp_path, monkeypatch):
    import voicevae.evaluate_unseen as protocol
    from voicevae.evaluate_unseen import anomaly_summary, compare, heldout_clips, to_markdown, unseen_protocol

    manifest = _heldout_tone_corpus(tmp_path / "c")
    converters = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4))
        vectors = compute_vectors(model, read_manifest(manifest, split="train"), is_samples=2, progress=False)
        converters.append(VoiceConverter(model, vectors, load_vocoder("griffinlim")))
    clips = heldout_clips(converters[0], manifest, per_voice=5, with_packaged=False)
    assert [c.speaker for c in clips] == ["spk2"] * 4 + ["spk3"] * 4
    assert all(c.kind == "real" and c.text is not None for c in clips)  # no engine label, English by default
    assert all(c.language == "en" for c in clips)
    # spk3 speaking French: each few-shot conversion (one voice to the other) crosses languages.
    clips = [dataclasses.replace(c, language="fr") if c.speaker == "spk3" else c for c in clips]
    tracked = []
    monkeypatch.setattr(protocol, "f0_track", lambda wav, *a: tracked.append(len(wav)) or f0_track(wav, *a))
    rate = converters[0].sample_rate
    sounds = {"rain": torch.randn(rate) * 0.05}  # a recorded sound, as evaluate.packaged_sounds gives them
    converted = []
    convert = VoiceConverter.convert

    def spy(self, wav, target, *args, **kwargs):
        matching = kwargs.get("matching")
        options = (kwargs.get("content_norm"), kwargs.get("f0_spread"), kwargs.get("target_spread"))
        converted.append((self, *options, None if matching is None else len(matching.clip_mels())))
        # These models have no pitch input for f0_spread to scale: only what reaches convert is under test.
        kwargs.pop("f0_spread"), kwargs.pop("target_spread", None)
        return convert(self, wav, target, *args, **kwargs)

    monkeypatch.setattr(VoiceConverter, "convert", spy)
    a, b = (
        unseen_protocol(
            vc, clips, manifest, named=["spk0"], is_samples=2, progress=False, sounds=sounds, content_norm=c, f0_spread=c
        )
        for vc, c in zip(converters, (0.0, 1.0))
    )
    # The second model's conversions with content norm and F0 spread: few-shot ones to the statistics
    # and melody spread of the target's 3 reference clips, named ones to the vector file's (none given).
    refs = {t: [c.audio for c in clips if c.speaker == t][:3] for t in ("spk2", "spk3")}
    spreads = [converters[1].target_spread(refs[t]) for t in ("spk2", "spk3")]
    assert [(cn, f0, ts, m) for vc, cn, f0, ts, m in converted if vc is converters[1]] == [
        (1.0, 1.0, spreads[0], 3),
        (1.0, 1.0, spreads[1], 3),
        (1.0, 1.0, None, None),
        (1.0, 1.0, None, None),
    ]
    assert all(cn == f0 == 0.0 and ts is None and m is None for vc, cn, f0, ts, m in converted if vc is converters[0])
    per = a["clips"]
    # pYIN, the slowest judge, tracks each scored source once and each output once:
    # per model, 2 sources + 2 resyntheses + 2 few-shot conversions.
    assert len(tracked) == 2 * 6
    # Three clips of each voice are its reference: only the fourth is scored.
    assert len(per["resynth/similarity"]) == 2
    assert len(per["fewshot/closer"]) == 2  # two targets, each from the other voice's scored clip
    assert len(per["named/closer"]) == 2
    # The originals' intonation is the judge's reading of each scored source clip.
    resynth = a["summary"]["resynthesis of held-out clips"]
    scored = [c for c in clips if c.name in per["resynth/key"]]
    assert resynth["F0 spread of the originals, semitones"] == pytest.approx(
        float(np.nanmean([f0_spread(c.audio, converters[0].sample_rate)[0] for c in scored]))
    )
    assert len(per["resynth/f0_spread"]) == len(per["fewshot/f0_spread"]) == 2
    few = a["summary"]["few-shot cloning of held-out voices"]
    assert few["closer to target (share)"] == pytest.approx(sum(per["fewshot/closer"]) / 2)
    assert per["fewshot/same_language"] == [0.0, 0.0]
    assert few["similarity to target [source in another language]"] == pytest.approx(np.mean(per["fewshot/to_target"]))
    assert "similarity to target [source in the target's language]" not in few
    anomaly = a["summary"]["anomaly score"]
    assert anomaly["real clips"] == 8 and 0 <= anomaly["real clips flagged unlike the training data"] <= 8
    assert 0.0 <= anomaly["AUROC real speech vs non-speech"] <= 1.0
    assert 0.0 <= anomaly["AUROC real speech vs packaged sounds, likelihood ratio"] <= 1.0
    assert anomaly["packaged sounds"] == 1 and anomaly["non-speech sounds"] == 6 + 1
    assert math.isfinite(anomaly["anomaly threshold (likelihood ratio)"])
    # Flags and passes are the likelihood ratio's against the vector file's threshold, not log p(x)'s:
    # every clip given a log p(x) far above it and a ratio far below, then the other way round.
    vc = converters[0]
    for log_px, ratio, flagged, passed in ((1e6, -1e6, 8, 0), (-1e6, 1e6, 0, 7)):
        monkeypatch.setattr(VoiceConverter, "scores", lambda self, wav, n_samples=16, pair=(log_px, ratio): pair)
        got = anomaly_summary(vc, clips, sounds, is_samples=2)
        assert got["real clips flagged unlike the training data"] == flagged
        assert got["non-speech sounds passed as like the training data"] == passed
    # A model against itself differs by nothing; two models differ clip by clip.
    assert all(d.mean == 0 for _, d in compare(a, a))
    diffs = dict(compare(a, b))
    assert diffs["resynthesis: similarity to original"].n == 2 and diffs["resynthesis: similarity to original"].mean != 0
    table = to_markdown(a, b, ("new", "old"))
    assert "paired differences, new - old" in table and "| few-shot: similarity to target |" in table
    assert "| resynthesis: F0 spread, semitones |" in table and "| resynthesis: voiced share of frames |" in table


def test_compare_pairs_two_saved_reports(tmp_path, capsys):
    import json

    from voicevae.cli import main

    def report(sims, keys=("a", "b", "c")):
        # No frame voiced in any clip: no F0 correlation to pair, so no row for it.
        clips = {"resynth/similarity": sims, "resynth/key": list(keys), "resynth/f0_corr": [math.nan] * 3}
        return {"model": {"summary": {"resynthesis of held-out clips": {"clips": 3.0}}, "clips": clips}}

    new, old, other = tmp_path / "new.json", tmp_path / "old.json", tmp_path / "other.json"
    new.write_text(json.dumps(report([0.9, 0.8, 0.85])))
    old.write_text(json.dumps(report([0.7, 0.7, 0.8])))
    other.write_text(json.dumps(report([0.7, 0.7, 0.8], keys=("a", "c", "b"))))
    assert main(["evaluate", "--unseen", "--compare", str(new), str(old)]) == 0
    out = capsys.readouterr().out
    assert "paired differences, new - old" in out
    assert "| resynthesis: similarity to original | +0.117 |" in out and "| 3 / 3 |" in out
    assert "F0 correlation" not in out and "nan" not in out
    # Reports of other clips (or another order) are not paired.
    assert main(["evaluate", "--unseen", "--compare", str(new), str(other)]) == 1
    assert "scored other clips" in capsys.readouterr().err


def test_compare_pairs_two_cloning_runs_conversion_by_conversion(tmp_path, capsys):
    import json

    from voicevae.cli import main

    pairs = [["a", "b1.wav"], ["a", "b2.wav"], ["b", "a1.wav"]]

    def report(to_target, errors, source_wer=0.3, conversions=pairs):
        scores = {"to_target": to_target, "to_source": [0.5, 0.5, 0.5], "errors": errors, "words": [10, 10, 10]}
        scores.update(f0_error=[0.0] * 3, f0_corr=[1.0] * 3)
        return {
            "budgets": {"60.0": {}},
            "scores": {"60.0": {"adapted": scores}},
            "conversions per condition": 3,
            "source WER": source_wer,
            "conversions": conversions,
        }

    new, old, other, unseen = (tmp_path / f"{n}.json" for n in ("new", "old", "other", "unseen"))
    new.write_text(json.dumps(report([0.9, 0.8, 0.4], [2, 3, 4])))
    old.write_text(json.dumps(report([0.4, 0.6, 0.3], [4, 3, 4])))
    other.write_text(json.dumps(report([0.4, 0.6, 0.3], [4, 3, 4], source_wer=0.4)))
    # Same count and source WER, but one conversion from another clip.
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(report([0.4, 0.6, 0.3], [4, 3, 4], conversions=[pairs[0], ["a", "b3.wav"], pairs[2]])))
    unseen.write_text(json.dumps({"model": {}}))
    assert main(["evaluate", "--compare", str(new), str(old)]) == 0
    out = capsys.readouterr().out
    # closer: 1,1,0 against 0,1,0; similarity +0.5, +0.2, +0.1; WER per clip -0.2, 0, 0.
    assert "| 60 s | adapted | +0.333 [" in out and "], 1/3 | +0.267 [" in out and "], 3/3 | -0.067 [" in out, out
    # Runs of other sources, or of the other protocol, are not paired.
    assert main(["evaluate", "--compare", str(new), str(other)]) == 1
    assert "converted different sources" in capsys.readouterr().err
    assert main(["evaluate", "--compare", str(new), str(swapped)]) == 1
    assert "conversion 2 is b2.wav -> a in new and b3.wav -> a in swapped" in capsys.readouterr().err
    assert main(["evaluate", "--compare", str(new), str(unseen)]) == 1
    assert "is a cloning report and" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{")
    assert main(["evaluate", "--compare", str(new), str(tmp_path / "broken.json")]) == 1
    assert "broken.json: not a JSON report" in capsys.readouterr().err


def test_packaged_sounds_skip_voices_and_short_clips_and_crop_long_ones(tmp_path, monkeypatch):
    import soundfile as sf

    from voicevae import evaluate as ev

    rate = 16000
    noise = np.random.default_rng(0).standard_normal(10 * rate).astype(np.float32) * 0.1
    sf.write(tmp_path / "boom.wav", noise, rate)
    sf.write(tmp_path / "hell_ow.wav", noise, rate)  # a hedgehog's cry: may hold a voice
    sf.write(tmp_path / "tick.wav", noise[: rate // 4], rate)
    monkeypatch.setattr(ev, "PACKAGED_SOUND_GLOBS", (str(tmp_path / "*.wav"),))
    sounds = ev.packaged_sounds(22050, seconds=4.0)
    assert list(sounds) == [str(tmp_path / "boom.wav")] and sounds[str(tmp_path / "boom.wav")].shape == (4 * 22050,)


def test_the_unseen_split_keeps_references_out_and_takes_sources_in_turn():
    from voicevae.evaluate_unseen import Clip, Split

    speakers = ["a"] * 5 + ["b"] * 4 + ["c"] * 2
    clips = [Clip(f"{s}{i}", s, "real", torch.zeros(1), None) for i, s in enumerate(speakers)]
    split = Split.of(clips, ref_clips=3)
    assert split.refs == {"a": [0, 1, 2], "b": [5, 6, 7]}  # c has too few clips to be a target
    assert split.scored == [3, 4, 8, 9, 10]
    # Sources for "a": the other voices' scored clips, one voice after another, never a reference.
    assert split.sources(clips, "a", 10) == [8, 9, 10] and split.sources(clips, "a", 2) == [8, 9]
    assert split.sources(clips, "b", 10) == [3, 9, 4, 10]
    emb = np.eye(11)
    mean = split.voice_embedding(emb, "a", {0, 1, 2})
    assert np.allclose(mean, (emb[3] + emb[4]) / np.sqrt(2))
    assert split.voice_embedding(emb, "c", {9, 10}) is None


def test_unseen_summary_splits_few_shot_by_language(tmp_path):
    from voicevae.evaluate_unseen import heldout_clips, summarise

    per = {
        "fewshot/kind": ["real", "real", "flite"],
        "fewshot/closer": [1.0, 0.0, 1.0],
        "fewshot/to_target": [0.9, 0.5, 0.7],
        "fewshot/to_source": [0.4, 0.6, 0.5],
        "fewshot/f0_corr": [0.5, 0.5, 0.5],
        "fewshot/errors": [1, 1, 1],
        "fewshot/words": [2, 2, 2],
        "fewshot/source_errors": [0, 0, 0],
        "fewshot/same_language": [1.0, 0.0, 1.0],
    }
    few = summarise(per, {})["few-shot cloning of held-out voices"]
    assert few["similarity to target [source in the target's language]"] == pytest.approx(0.8)
    assert few["closer to target [source in the target's language]"] == pytest.approx(1.0)
    assert few["similarity to target [source in another language]"] == pytest.approx(0.5)
    # A report from before the split has no such rows.
    del per["fewshot/same_language"]
    assert not [k for k in summarise(per, {})["few-shot cloning of held-out voices"] if "language]" in k]
    # A clip's language comes from the manifest label; an empty one is English.
    from conftest import edit_manifest

    def french(r: dict) -> None:
        r["language"] = "fr" if r["speaker"] == "spk3" else ""

    manifest = edit_manifest(_heldout_tone_corpus(tmp_path / "c"), french)
    torch.manual_seed(0)
    model = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4))
    vectors = compute_vectors(model, read_manifest(manifest, split="train"), is_samples=2, progress=False)
    vc = VoiceConverter(model, vectors, load_vocoder("griffinlim"))
    clips = heldout_clips(vc, manifest, per_voice=2, with_packaged=False)
    assert {(c.speaker, c.language) for c in clips} == {("spk2", "en"), ("spk3", "fr")}
