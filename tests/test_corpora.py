"""Manifests, corpus scanners and split assignment."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicevae import cli
from voicevae.audio import AUDIO_SUFFIXES
from voicevae.corpora import (
    ManifestError,
    Utterance,
    assign_splits,
    read_manifest,
    scan_folder,
    scan_librispeech,
    scan_libritts,
    scan_vctk,
    write_manifest,
)


def write_clip(path: Path, rate: int = 16000, seconds: float = 0.2) -> Path:
    """A short sine clip; the format (WAV, FLAC, OGG, AIFF) follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 220 * t).astype(np.float32), rate)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------- manifests


def test_manifest_round_trip(tmp_path):
    a = write_clip(tmp_path / "wavs" / "a.wav")
    outside = write_clip(tmp_path / "elsewhere" / "b.flac")
    utts = [
        Utterance(a, "s1", "hello, world", "train", {"gender": "f"}),
        Utterance(outside, "s2", 'a "quoted" text', "valid", {"accent": "Scottish"}),
    ]
    manifest = write_manifest(tmp_path / "corpus" / "manifest.csv", utts)
    # Clips outside the manifest's folder are written absolute.
    rows = list(csv.reader(manifest.open()))
    assert rows[0] == ["path", "speaker", "text", "split", "gender", "accent"]
    assert rows[1][0] == str(a.resolve()) and rows[1][4:] == ["f", ""]

    local = write_manifest(tmp_path / "manifest.csv", utts)
    assert list(csv.reader(local.open()))[1][0] == "wavs/a.wav"
    back = read_manifest(local)
    assert [u.path for u in back] == [a.resolve(), outside.resolve()]
    assert [(u.speaker, u.text, u.split) for u in back] == [("s1", "hello, world", "train"), ("s2", 'a "quoted" text', "valid")]
    assert back[0].labels == {"gender": "f", "accent": ""}
    assert back[1].labels == {"gender": "", "accent": "Scottish"}
    assert [u.speaker for u in read_manifest(local, split="valid")] == ["s2"]


def test_write_manifest_refuses_overwrite(tmp_path):
    utts = [Utterance(write_clip(tmp_path / "a.wav"), "s1", "", "train")]
    target = write_manifest(tmp_path / "m.csv", utts)
    before = target.read_text()
    with pytest.raises(FileExistsError, match="m.csv"):
        write_manifest(target, [])
    assert target.read_text() == before
    write_manifest(target, [], overwrite=True)
    assert target.read_text().strip() == "path,speaker,text,split"
    # The atomic write leaves no temporary files behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.csv"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("path,speaker,text\na.wav,s1,hi\n", "missing column.*split"),
        ("path,speaker,text,split\na.wav,,hi,train\n", "line 2: empty speaker"),
        ("path,speaker,text,split\na.wav,s1,hi,train\nnope.wav,s1,hi,train\n", "line 3: audio file not found"),
        ("path,speaker,text,split\na.wav,s1,hi,train,extra\n", "line 2: row has a different number"),
        ("path,speaker,text,split\na.wav,s1,hi\n", "line 2: row has a different number"),
    ],
)
def test_read_manifest_errors_name_file_and_line(tmp_path, body, message):
    write_clip(tmp_path / "a.wav")
    manifest = write_text(tmp_path / "bad.csv", body)
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(manifest)
    assert str(manifest) in str(info.value)


def test_read_manifest_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")


# ---------------------------------------------------------------- scanners


def test_scan_vctk(tmp_path):
    root = tmp_path / "VCTK"
    for spk in ("p225", "p226"):
        for n in ("001", "002"):
            for mic in ("mic1", "mic2"):
                write_clip(root / "wav48_silence_trimmed" / spk / f"{spk}_{n}_{mic}.flac")
            write_text(root / "txt" / spk / f"{spk}_{n}.txt", f"Text {spk} {n}.\n")
    # p315 of the real corpus has audio but no transcripts.
    write_clip(root / "wav48_silence_trimmed" / "p315" / "p315_001_mic1.flac")
    write_text(
        root / "speaker-info.txt",
        "ID  AGE  GENDER  ACCENTS  REGION COMMENTS\n"
        "p225  23  F    English    Southern  England\n"
        "226  22  M    English    Surrey\n",
    )
    utts = scan_vctk(root)
    assert [u.path.name for u in utts] == [
        "p225_001_mic1.flac",
        "p225_002_mic1.flac",
        "p226_001_mic1.flac",
        "p226_002_mic1.flac",
        "p315_001_mic1.flac",
    ]
    assert [u.speaker for u in utts] == ["p225", "p225", "p226", "p226", "p315"]
    assert utts[1].text == "Text p225 002."
    assert utts[4].text == ""
    assert utts[0].labels == {"gender": "f", "age": "23", "accent": "English", "region": "Southern England"}
    assert utts[2].labels["gender"] == "m"
    assert utts[4].labels == {}
    assert {u.path.name[-9:] for u in scan_vctk(root, mic="mic2")} == {"mic2.flac"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="wav48_silence_trimmed"):
        scan_vctk(tmp_path / "empty")


def test_scan_libritts(tmp_path):
    root = tmp_path / "LibriTTS"
    chapter = root / "train-clean-100" / "19" / "198"
    a = write_clip(chapter / "19_198_000000_000000.wav", rate=24000)
    write_text(chapter / "19_198_000000_000000.normalized.txt", "Normalized text.")
    write_text(chapter / "19_198_000000_000000.original.txt", "Original text.")
    b = write_clip(chapter / "19_198_000001_000000.wav", rate=24000)
    write_text(chapter / "19_198_000001_000000.original.txt", "Only the original.")
    write_clip(root / "dev-clean" / "84" / "121123" / "84_121123_000000_000000.wav", rate=24000)
    write_text(root / "SPEAKERS.txt", ";READER|GENDER|SUBSET|NAME\n19   |F|train-clean-100|Kara\n")
    utts = scan_libritts(root)
    by_path = {u.path: u for u in utts}
    assert len(utts) == 3
    assert by_path[a.resolve()].text == "Normalized text."
    assert by_path[b.resolve()].text == "Only the original."
    assert by_path[a.resolve()].labels == {"subset": "train-clean-100", "gender": "f"}
    other = next(u for u in utts if u.speaker == "84")
    assert other.labels == {"subset": "dev-clean"} and other.text == ""
    # A subset folder finds SPEAKERS.txt one level up.
    assert {u.labels.get("gender") for u in scan_libritts(root / "train-clean-100")} == {"f"}


def test_scan_librispeech(tmp_path):
    root = tmp_path / "LibriSpeech"
    chapter = root / "train-clean-100" / "103" / "1240"
    for n in ("0000", "0001"):
        write_clip(chapter / f"103-1240-{n}.flac")
    write_text(chapter / "103-1240.trans.txt", "103-1240-0000 CHAPTER ONE\n103-1240-0001 MISSUS RACHEL LYNDE\n")
    write_text(root / "SPEAKERS.TXT", ";ID  |SEX| SUBSET           |MINUTES| NAME\n103  | F | train-clean-100  | 25.19 | Kate\n")
    utts = scan_librispeech(root)
    assert [(u.speaker, u.text, u.path.name) for u in utts] == [
        ("103", "CHAPTER ONE", "103-1240-0000.flac"),
        ("103", "MISSUS RACHEL LYNDE", "103-1240-0001.flac"),
    ]
    assert utts[0].labels == {"subset": "train-clean-100", "gender": "f"}
    (chapter / "103-1240-0001.flac").unlink()
    with pytest.raises(ManifestError, match=r"trans.txt, line 2: audio file not found"):
        scan_librispeech(root)


def test_scan_folder(tmp_path):
    root = tmp_path / "clips"
    write_clip(root / "alice" / "a1.wav")
    write_text(root / "alice" / "a1.txt", "first clip\n")
    write_clip(root / "alice" / "session2" / "deep" / "a2.flac")
    write_text(root / "alice" / "session2" / "deep" / "a2.lab", "second clip")
    write_clip(root / "bob" / "b1.ogg")
    write_clip(root / "bob" / "b2.aiff")
    write_clip(root / "stray.wav")  # no speaker folder
    write_text(root / "bob" / "notes.txt", "not audio")
    utts = scan_folder(root)
    assert [(u.speaker, u.path.name, u.text) for u in utts] == [
        ("alice", "a1.wav", "first clip"),
        ("alice", "a2.flac", "second clip"),
        ("bob", "b1.ogg", ""),
        ("bob", "b2.aiff", ""),
    ]


def test_audio_suffixes_are_formats_soundfile_reads():
    # Every file a folder search finds must load (audio.load_audio reads with soundfile).
    formats = sf.available_formats()
    assert all({".aif": "AIFF"}.get(s, s[1:].upper()) in formats for s in AUDIO_SUFFIXES)


# ---------------------------------------------------------------- splits


def _corpus(n_speakers: int = 6, n_clips: int = 20) -> list[Utterance]:
    return [Utterance(Path(f"/c/s{s}/{i:03d}.wav"), f"s{s}", "", "train") for s in range(n_speakers) for i in range(n_clips)]


def test_assign_splits_deterministic_and_disjoint():
    utts = _corpus()
    a = assign_splits(utts, valid_fraction=0.1, heldout_speakers=2, seed=3)
    b = assign_splits(list(reversed(utts)), valid_fraction=0.1, heldout_speakers=2, seed=3)
    split_a = {u.path: u.split for u in a}
    assert split_a == {u.path: u.split for u in b}  # input order does not matter
    test_speakers = {u.speaker for u in a if u.split == "test_voice"}
    train_speakers = {u.speaker for u in a if u.split in ("train", "valid")}
    assert len(test_speakers) == 2 and not test_speakers & train_speakers
    for spk in train_speakers:
        assert sum(u.split == "valid" for u in a if u.speaker == spk) == 2  # 10 % of 20
    assert utts[0].split == "train"  # the input is not modified
    other_seed = assign_splits(utts, valid_fraction=0.1, heldout_speakers=2, seed=4)
    assert {u.path: u.split for u in other_seed} != split_a


def test_assign_splits_named_speakers_and_small_speakers():
    utts = _corpus(n_speakers=3, n_clips=3)
    out = assign_splits(utts, valid_fraction=0.05, heldout_speakers=["s1"])
    assert {u.split for u in out if u.speaker == "s1"} == {"test_voice"}
    # A tiny fraction still holds out one clip, and never all of a speaker's clips.
    assert [sum(u.split == "valid" for u in out if u.speaker == s) for s in ("s0", "s2")] == [1, 1]
    with pytest.raises(ValueError, match="not in the corpus: nobody"):
        assign_splits(utts, heldout_speakers=["nobody"])
    with pytest.raises(ValueError, match="at least one must stay"):
        assign_splits(utts, heldout_speakers=3)


def test_scan_command_writes_and_refuses_overwrite(tmp_path, capsys):
    root = tmp_path / "clips"
    for spk in ("a", "b", "c"):
        for i in range(10):
            write_clip(root / spk / f"{i}.wav", seconds=0.05)
    out = tmp_path / "m.csv"
    argv = ["scan", str(root), "--layout", "folder", "-o", str(out), "--valid-fraction", "0.2", "--heldout-speakers", "1"]
    assert cli.main(argv) == 0
    utts = read_manifest(out)
    assert len(utts) == 30
    assert sorted(sum(u.split == s for u in utts) for s in ("train", "valid", "test_voice")) == [4, 10, 16]
    before = out.read_text()
    assert cli.main(argv) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert cli.main([*argv, "--seed", "7", "--force"]) == 0
    assert out.read_text() != before
    assert cli.main(["scan", str(tmp_path / "none"), "--layout", "vctk", "-o", str(tmp_path / "x.csv")]) == 1
    assert "corpus folder not found" in capsys.readouterr().err
