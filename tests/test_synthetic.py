"""The synthetic corpus: voices, sentence plan, text-to-speech programs, make-corpus."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicevae.corpora import read_manifest
from voicevae.synthetic import (
    DEFAULT_SENTENCES,
    EXTRA_VOICES,
    FESTIVAL_PACKAGES,
    SAMPLE_RATE,
    VOICES,
    SynthesisError,
    check_programs,
    make_corpus,
    plan_corpus,
    read_sentences,
    select_voices,
    synthesize,
)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_shipped_sentences():
    sentences = read_sentences(DEFAULT_SENTENCES)
    assert len(sentences) >= 200
    assert all(5 <= len(s.split()) <= 15 for s in sentences)


def test_plan_corpus_holds_out_sentences_and_voices():
    voices = list(VOICES[:4])
    plan = plan_corpus(
        voices, [f"s{i}" for i in range(50)], n_sentences=20, n_valid_sentences=5, test_voices=[voices[0].name], seed=0
    )
    held = {i for v, i, split in plan if split == "valid"}
    train = {i for v, i, split in plan if split == "train"}
    assert len(held) == 5 and not held & train
    assert {split for v, i, split in plan if v == voices[0]} == {"test_voice"}
    for v in voices:
        read = [i for w, i, _ in plan if w == v]
        assert len(read) == len(set(read)) == 25 and held <= set(read)
    # Voices draw different training sentences, all reproducibly.
    assert len({tuple(i for w, i, s in plan if w == v and s == "train") for v in voices[1:]}) == 3
    assert plan == plan_corpus(voices, [f"s{i}" for i in range(50)], 20, 5, [voices[0].name], 0)
    with pytest.raises(ValueError, match="only 50 are available"):
        plan_corpus(voices, [f"s{i}" for i in range(50)], 46, 5, [], 0)


def test_missing_program_names_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SynthesisError, match="'flite'.*apt-get install flite"):
        check_programs(select_voices("flite_slt"))
    with pytest.raises(SynthesisError, match="'text2wave'.*apt-get install festival"):
        check_programs(select_voices("festival_ked"))
    with pytest.raises(ValueError, match="unknown voice"):
        select_voices("flite_slt,nobody")


def test_extra_voices_are_selected_apart_and_name_their_packages(tmp_path, monkeypatch):
    assert select_voices("extra") == list(EXTRA_VOICES)
    assert not {v.name for v in EXTRA_VOICES} & {v.name for v in VOICES}  # the default corpus is unchanged
    assert [v.name for v in select_voices("flite_slt,festival_cs_ph")] == ["flite_slt", "festival_cs_ph"]
    # A missing voice's error names the Debian package that installs it.
    assert all(v.voice in FESTIVAL_PACKAGES for v in EXTRA_VOICES)
    monkeypatch.setattr("voicevae.synthetic.FESTIVAL_VOICE_DIRS", (tmp_path,))
    monkeypatch.setattr("shutil.which", lambda program: "/usr/bin/" + program)
    with pytest.raises(SynthesisError, match="apt-get install festvox-czech-ph"):
        check_programs(select_voices("festival_cs_ph"))


needs_tts = pytest.mark.skipif(
    shutil.which("flite") is None or shutil.which("espeak-ng") is None, reason="flite and espeak-ng not installed"
)


@needs_tts
def test_espeak_variants_take_effect(tmp_path):
    """espeak-ng ignores a +variant it cannot attach (e.g. after 'en-gb') without an error."""
    for v in (v for v in VOICES if v.engine == "espeak-ng"):
        base = dataclasses.replace(v, voice=v.voice.split("+")[0])
        with_variant, _ = synthesize(v, "Hello there.", tmp_path)
        without, _ = synthesize(base, "Hello there.", tmp_path)
        assert len(with_variant) != len(without) or not np.array_equal(with_variant, without), v.name


@needs_tts
def test_make_corpus_two_voices(tmp_path):
    sentences = write_text(tmp_path / "sentences.txt", "The cat sat on the mat.\nA quick brown fox jumps high.\n")
    voices = select_voices("flite_slt,espeak_us_m1")
    out = tmp_path / "corpus"
    utts, failures = make_corpus(
        out,
        voices=voices,
        n_sentences=1,
        n_valid_sentences=1,
        test_voices=["espeak_us_m1"],
        sentence_file=sentences,
        jobs=2,
        progress=False,
    )
    assert failures == []
    back = read_manifest(out / "manifest.csv")
    assert len(back) == 4
    assert [(u.path, u.split) for u in back] == [(u.path, u.split) for u in utts]
    assert {(u.speaker, u.split) for u in back} == {
        ("flite_slt", "train"),
        ("flite_slt", "valid"),
        ("espeak_us_m1", "test_voice"),
    }
    assert {u.speaker: (u.labels["gender"], u.labels["engine"]) for u in back} == {
        "flite_slt": ("f", "flite"),
        "espeak_us_m1": ("m", "espeak-ng"),
    }
    for u in back:
        x, rate = sf.read(str(u.path))
        assert rate == SAMPLE_RATE and x.ndim == 1
        assert 0.5 < len(x) / rate < 5.0
        assert np.abs(x[:100]).max() < 1e-3  # trimmed, then padded with silence
        assert 0.03 < np.sqrt(np.mean(x**2)) < 0.06
    header = (out / "manifest.csv").read_text().splitlines()[0]
    assert header == "path,speaker,text,split,gender,engine,talker"
    with pytest.raises(FileExistsError, match="--force"):
        make_corpus(out, voices=voices, n_sentences=1, n_valid_sentences=1, sentence_file=sentences)


def test_make_corpus_reports_failed_clips(tmp_path, monkeypatch):
    """A clip the engine fails on is skipped and reported, not fatal."""
    monkeypatch.setenv("PATH", str(tmp_path))
    fake = write_text(tmp_path / "espeak-ng", "#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    sentences = write_text(tmp_path / "s.txt", "One two three four five.\n")
    with pytest.raises(SynthesisError, match="every clip failed.*exit 3"):
        make_corpus(
            tmp_path / "c",
            voices=select_voices("espeak_us_m1"),
            n_sentences=1,
            n_valid_sentences=0,
            sentence_file=sentences,
            jobs=1,
            progress=False,
        )
