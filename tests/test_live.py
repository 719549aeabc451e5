"""`voicevae live` with a stand-in for sounddevice: the callback path, and the errors a machine without audio gets."""

import importlib.abc
import sys

import numpy as np
import pytest
import torch
import torchaudio

import voicevae
import voicevae.live as live
from voicevae.cli import main


class FakeSoundDevice:
    """Enough of sounddevice: devices, and a duplex Stream that calls back with blocks of a given signal."""

    def __init__(self, devices, signal=None):
        self.devices, self.signal, self.played = devices, signal, []
        self.opened = None

    def query_devices(self, device=None, kind=None):
        if device is None:
            return self.devices if kind is None else self.devices[0]
        if device not in (d["name"] for d in self.devices):
            raise ValueError(f"No {kind} device matching {device!r}")
        return self.devices[0]

    def Stream(self, **kw):  # noqa: N802  (sounddevice's name)
        self.opened = kw
        fake = self

        class Running:
            def __enter__(self):
                block = kw["blocksize"]
                for i in range(0, fake.signal.size - block + 1, block):
                    out = np.zeros((block, 1), np.float32)
                    kw["callback"](fake.signal[i : i + block, None], out, block, None, None)
                    fake.played.append(out[:, 0].copy())
                return self

            def __exit__(self, *exc):
                return False

        return Running()


DUPLEX = [{"name": "mic+speaker", "max_input_channels": 1, "max_output_channels": 2, "default_samplerate": 22050.0}]


def test_live_plays_the_stream_output_block_by_block():
    vc = voicevae.load(vocoder="fast", device="cpu")
    wav = vc.load_audio(voicevae.api.ASSETS / "default" / "examples" / "flite_awb.wav")[: 22050 * 2]
    sd = FakeSoundDevice(DUPLEX, wav.numpy())
    stream = vc.stream("flite_slt")
    assert live.convert_live(stream, sd, seconds=0) == []
    assert sd.opened["samplerate"] == 22050 and sd.opened["blocksize"] == stream.block
    played = np.concatenate(sd.played)
    # What was played is what the stream gives for the same blocks.
    reference = vc.stream("flite_slt")
    expected = torch.cat([reference.process(wav[i : i + stream.block]) for i in range(0, played.size, stream.block)])
    assert np.allclose(played, expected.numpy(), atol=1e-6)
    assert np.abs(played[stream.delay :]).max() > 0.01  # converted speech, not silence


def test_live_runs_at_the_device_rate_and_reports_callback_errors():
    vc = voicevae.load(vocoder="fast", device="cpu")
    wav = vc.load_audio(voicevae.api.ASSETS / "default" / "examples" / "flite_awb.wav")[: 22050 * 2]
    at_48k = torchaudio.functional.resample(wav, 22050, 48000).numpy()
    devices = [{**DUPLEX[0], "default_samplerate": 48000.0}]
    sd = FakeSoundDevice(devices, at_48k)
    stream = vc.stream("flite_slt")
    live.convert_live(stream, sd, seconds=0)
    assert sd.opened["samplerate"] == 48000 and sd.opened["blocksize"] == round(stream.block * 48000 / 22050)
    played = np.concatenate(sd.played)
    assert np.abs(played[played.size // 2 :]).max() > 0.01
    # A failure inside the callback (here: a stream already flushed) ends the session with its reason.
    stream.flush()
    with pytest.raises(ValueError, match="live conversion stopped: .*reset"):
        live.convert_live(stream, FakeSoundDevice(devices, at_48k), seconds=None)


@pytest.mark.parametrize(
    ("devices", "args", "message"),
    [
        ([], [], "no audio input device"),
        ([{"name": "mic", "max_input_channels": 1, "max_output_channels": 0}], [], "no audio output device"),
        (DUPLEX, ["--input-device", "usb"], "--input-device 'usb'"),
    ],
)
def test_live_without_usable_devices_says_so(monkeypatch, capsys, devices, args, message):
    monkeypatch.setattr(live, "sounddevice_module", lambda: FakeSoundDevice(devices))
    assert main(["live", "--target", "flite_slt", *args]) == 1
    assert message in capsys.readouterr().err


def test_live_without_sounddevice_or_portaudio_names_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as when it is not installed
    assert main(["live", "--target", "flite_slt"]) == 1
    assert "voicevae[live]" in capsys.readouterr().err

    class NoPortAudio(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")  # what sounddevice raises on import
            return None

    monkeypatch.delitem(sys.modules, "sounddevice")
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    assert main(["live", "--target", "flite_slt"]) == 1
    assert "libportaudio2" in capsys.readouterr().err


def test_live_passes_the_detail_to_the_stream_and_refuses_a_bad_one(monkeypatch, capsys):
    monkeypatch.setattr(live, "sounddevice_module", lambda: FakeSoundDevice(DUPLEX))
    streams = []
    monkeypatch.setattr(live, "convert_live", lambda stream, *a, **k: streams.append(stream) or [])
    assert main(["live", "--target", "flite_slt", "--detail", "0.5", "--seconds", "0"]) == 0
    assert streams[0].detail == 0.5 and streams[0].fixed_own is None  # no --source: estimated as it goes
    assert main(["live", "--target", "flite_slt", "--detail", "2"]) == 1
    assert "detail must be in [0, 1]" in capsys.readouterr().err
