"""`voicevae export`: TorchScript and ONNX graphs of the converter agree with PyTorch and run without voicevae."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import voicevae
from voicevae.cli import main
from voicevae.export import ConvISTFT, ConvLogMel, ExportableConverter, export
from voicevae.features import MelFrontend
from voicevae.pitch import intonation

EXAMPLES = Path(voicevae.__file__).parent / "assets" / "default" / "examples"


@pytest.fixture(scope="module")
def vc():
    return voicevae.load(vocoder="fast", device="cpu")


@pytest.fixture(scope="module")
def clip(vc) -> torch.Tensor:
    return vc.load_audio(EXAMPLES / "flite_awb.wav")


def pitch_of(vc, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The graph's fourth input for a model that reads the source's intonation (the default does); else nothing."""
    if not vc.model.config.pitch_input:
        return ()
    hop = vc.model.mel_config.hop_length
    return (intonation(audio, vc.sample_rate, audio.numel() // hop, hop).unsqueeze(0),)


def test_fourier_convolutions_equal_the_fft_paths(vc, clip):
    frontend = MelFrontend(vc.model.mel_config)
    assert torch.allclose(ConvLogMel(frontend)(clip[None])[0], frontend(clip), atol=2e-4)
    mel = frontend(clip[:40000])[None]
    mag, phase = vc.vocoder.polar(mel)
    head = vc.vocoder.head.istft
    conv = ConvISTFT(head.n_fft, head.hop_length, head.window)
    assert torch.allclose(conv(mag, phase), vc.vocoder.synthesize(mag, phase), atol=1e-5)
    # Any spectrum, DC and Nyquist bins included (irfft weighs them apart and drops their imaginary parts).
    g = torch.Generator().manual_seed(0)
    mag, phase = torch.rand(2, 513, 50, generator=g), 6.3 * torch.rand(2, 513, 50, generator=g)
    assert torch.allclose(conv(mag, phase), vc.vocoder.synthesize(mag, phase), atol=1e-5)


def test_the_graph_gives_vc_convert_samples(vc, clip, monkeypatch):
    net = ExportableConverter(vc.model, vc.vocoder, MelFrontend(vc.model.mel_config)).eval()
    for n in (clip.numel(), 30001):  # an even and an odd number of mel frames
        pitch = pitch_of(vc, clip[:n])
        if pitch:  # convert gets the same contour: RAPT's output can move a frame with the calls before it
            monkeypatch.setattr(vc, "intonation", lambda wav, frames, p=pitch[0]: p[..., :frames])
        with torch.no_grad():
            out = net(clip[None, :n], vc.target_vector("flite_slt")[None], torch.ones(1), *pitch)[0]
        assert torch.allclose(out, vc.convert(clip[:n], "flite_slt").cpu(), atol=1e-4)
    with torch.no_grad():
        half = net(clip[None, :n], vc.target_vector("flite_slt")[None], torch.full((1,), 0.5), *pitch)[0]
    assert torch.allclose(half, vc.convert(clip[:n], "flite_slt", strength=0.5).cpu(), atol=1e-4)
    # A graph exported with the source's detail gives convert's samples with it.
    detailed = ExportableConverter(vc.model, vc.vocoder, MelFrontend(vc.model.mel_config), detail=0.5).eval()
    with torch.no_grad():
        out = detailed(clip[None, :n], vc.target_vector("flite_slt")[None], torch.ones(1), *pitch)[0]
    want = vc.convert(clip[:n], "flite_slt", detail=0.5).cpu()
    assert torch.allclose(out, want, atol=1e-4)
    assert not torch.allclose(want, vc.convert(clip[:n], "flite_slt").cpu(), atol=1e-2)


# Runs the exported graph with voicevae made unimportable: only torch / onnxruntime.
RUNNER = """
import sys, json, numpy as np
sys.modules["voicevae"] = None
graph, audio_path, out_path = sys.argv[1:4]
meta = json.load(open(graph + ".json"))
audio = np.load(audio_path)[None].astype(np.float32)
pitch = np.load(sys.argv[4]).astype(np.float32) if len(sys.argv) > 4 else None
target = np.array([meta["voices"]["flite_slt"]], dtype=np.float32)
strength = np.array([0.7], dtype=np.float32)
if meta["format"] == "onnx":
    import onnxruntime
    feeds = {"audio": audio, "target": target, "strength": strength} | ({} if pitch is None else {"pitch": pitch})
    out, = onnxruntime.InferenceSession(graph).run(None, feeds)
else:
    import torch
    net = torch.jit.load(graph)
    extra = () if pitch is None else (torch.from_numpy(pitch),)
    out = net(torch.from_numpy(audio), torch.from_numpy(target), torch.from_numpy(strength), *extra).detach().numpy()
np.save(out_path, out)
"""


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_graph_runs_without_voicevae_and_agrees_to_1e_4(vc, clip, tmp_path, fmt):
    graph = tmp_path / f"voice.{'onnx' if fmt == 'onnx' else 'ts'}"
    assert main(["export", "--format", fmt, "-o", str(graph)]) == 0
    meta = json.loads(graph.with_name(graph.name + ".json").read_text())
    assert meta["sample_rate"] == vc.sample_rate and set(meta["voices"]) == set(vc.speakers)
    net = ExportableConverter(vc.model, vc.vocoder, MelFrontend(vc.model.mel_config)).eval()
    (tmp_path / "runner.py").write_text(RUNNER)
    for n in (clip.numel(), 30001):  # not the traced length: the graph's lengths are dynamic
        np.save(tmp_path / "in.npy", clip[:n].numpy())
        pitch = pitch_of(vc, clip[:n])
        args = [str(graph), str(tmp_path / "in.npy"), str(tmp_path / "out.npy")]
        if pitch:
            np.save(tmp_path / "pitch.npy", pitch[0].numpy())
            args.append(str(tmp_path / "pitch.npy"))
        subprocess.run([sys.executable, str(tmp_path / "runner.py"), *args], check=True)
        got = torch.from_numpy(np.load(tmp_path / "out.npy"))
        with torch.no_grad():
            want = net(clip[None, :n], vc.target_vector("flite_slt")[None], torch.full((1,), 0.7), *pitch)
        assert got.shape == want.shape
        assert float((got - want).abs().max()) < 1e-4


def test_export_refuses_what_it_cannot_do(tmp_path, capsys):
    out = tmp_path / "voice.ts"
    out.write_text("mine")
    assert main(["export", "--format", "torchscript", "-o", str(out)]) == 1
    assert "exists" in capsys.readouterr().err and out.read_text() == "mine"
    # The voices file is the user's too: refused alone, before the graph is written.
    other, sidecar = tmp_path / "other.ts", tmp_path / "other.ts.json"
    sidecar.write_text("notes")
    assert main(["export", "--format", "torchscript", "-o", str(other)]) == 1
    assert "other.ts.json: exists" in capsys.readouterr().err and not other.exists() and sidecar.read_text() == "notes"
    assert main(["export", "--format", "torchscript", "-o", str(other), "--force"]) == 0
    assert "flite_slt" in json.loads(sidecar.read_text())["voices"]
    assert main(["export", "--format", "onnx", "--vocoder", "hifigan", "-o", str(tmp_path / "v.onnx")]) == 1
    assert "fast vocoder" in capsys.readouterr().err
    assert main(["export", "--format", "torchscript", "--detail", "2", "-o", str(tmp_path / "d.ts")]) == 1
    assert "--detail must be in [0, 1], got 2" in capsys.readouterr().err and not (tmp_path / "d.ts").exists()
    with pytest.raises(ValueError, match="--format"):
        export(voicevae.load(vocoder="fast", device="cpu"), tmp_path / "x", "tflite")
