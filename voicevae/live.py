"""`voicevae live`: the microphone converted to the speakers as you speak (sounddevice + vc.stream).

    voicevae live --target flite_slt [--block-ms 35] [--seconds 60] [--detail 0.5]
    voicevae live --list-devices

One duplex PortAudio stream at the device's rate, one block per callback: the
callback resamples the block to the model's rate, hands it to
`StreamingConverter.process`, resamples what comes back and plays it, so what
you hear is your voice `latency_ms` (plus compute and resampling) later.
"""

from __future__ import annotations

import argparse
import sys
import time
from types import ModuleType
from typing import Any

import numpy as np
import torch

from .api import DEFAULT_VOCODER
from .postfilter import add_argument as add_postfilter_argument
from .postfilter import check as check_postfilter
from .realtime import StreamingConverter
from .streaming import Resampler, check_fraction


def sounddevice_module() -> ModuleType:
    """sounddevice, or a clear error naming what is missing (the package, or PortAudio under it)."""
    try:
        import sounddevice
    except ImportError as e:
        raise ValueError("voicevae live needs sounddevice: pip install 'voicevae[live]'") from e
    except OSError as e:  # sounddevice loads PortAudio on import
        raise ValueError(f"voicevae live needs the PortAudio library (Debian: apt-get install libportaudio2): {e}") from e
    return sounddevice


def check_devices(sd: Any, input_device: str | int | None, output_device: str | int | None) -> None:
    """Raise ValueError unless an input and an output device exist (the named ones, when named)."""
    try:
        devices = list(sd.query_devices())
    except Exception as e:  # PortAudio errors come as sounddevice.PortAudioError
        raise ValueError(f"cannot list audio devices: {e}") from e
    for kind, wanted, key in (("input", input_device, "max_input_channels"), ("output", output_device, "max_output_channels")):
        usable = [d for d in devices if d.get(key, 0) > 0]
        if not usable:
            raise ValueError(f"no audio {kind} device on this machine (see `voicevae live --list-devices`)")
        if wanted is not None:
            try:
                sd.query_devices(wanted, kind)
            except Exception as e:
                raise ValueError(f"--{kind}-device {wanted!r}: {e} (see `voicevae live --list-devices`)") from e


class Duplex:
    """The PortAudio callback: device-rate blocks in, converted device-rate blocks out.

    Devices often refuse the model's 22.05 kHz, so the stream runs at the
    device's own rate with a streaming resampler on each side. An error in
    the callback is kept (PortAudio would swallow it) and ends the session.
    """

    def __init__(self, stream: StreamingConverter, rate: int) -> None:
        self.stream, self.rate = stream, rate
        self.blocksize = max(1, round(stream.block * rate / stream.sample_rate))
        self.to_model, self.to_device = Resampler(rate, stream.sample_rate), Resampler(stream.sample_rate, rate)
        self.queue = torch.zeros(0)  # converted device-rate samples not yet played
        self.overruns: list[str] = []
        self.error: Exception | None = None

    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status:
            self.overruns.append(str(status))  # xruns: the callback was late, or the device dropped samples
        outdata[:, 0] = 0.0
        if self.error is not None:
            return
        try:
            x = torch.from_numpy(np.ascontiguousarray(indata[:, 0], dtype=np.float32))
            converted = self.stream.process(self.to_model.feed(x))
            self.queue = torch.cat([self.queue, self.to_device.feed(converted)])
        except Exception as e:  # noqa: BLE001  (reported by convert_live once the device is closed)
            self.error = e
            return
        out, self.queue = self.queue[:frames], self.queue[frames:]
        # Short only while the resamplers fill: silence first, so the delay stays fixed afterwards.
        outdata[frames - out.numel() :, 0] = out.numpy()


def device_rate(sd: Any, device: str | int | None, fallback: int) -> int:
    """The input device's default sample rate, in Hz."""
    info = sd.query_devices(device, "input")
    return int(info.get("default_samplerate") or fallback)


def convert_live(
    stream: StreamingConverter,
    sd: Any,
    seconds: float | None,
    input_device: str | int | None = None,
    output_device: str | int | None = None,
) -> list[str]:
    """Convert the input device to the output device until `seconds` pass (None: until Ctrl-C); returns xrun notes."""
    check_devices(sd, input_device, output_device)
    rate = device_rate(sd, input_device, stream.sample_rate)
    duplex = Duplex(stream, rate)
    try:
        with sd.Stream(
            samplerate=rate,
            blocksize=duplex.blocksize,
            channels=1,
            dtype="float32",
            device=(input_device, output_device),
            callback=duplex.callback,
        ):
            start = time.monotonic()
            while duplex.error is None and (seconds is None or time.monotonic() - start < seconds):
                time.sleep(0.1)
    except getattr(sd, "PortAudioError", OSError) as e:
        raise ValueError(f"cannot open the audio devices at {rate} Hz: {e}") from e
    if duplex.error is not None:
        raise ValueError(f"live conversion stopped: {duplex.error}") from duplex.error
    return duplex.overruns


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model.pt or a model folder (default: the shipped model)")
    p.add_argument(
        "--vocoder", default=DEFAULT_VOCODER, help=f"vocoder (default {DEFAULT_VOCODER}; the others are too slow live)"
    )
    p.add_argument("--target", help="a voice name (`voicevae voices`)")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument(
        "--source", help="your own voice as a name in the vector file (needed for --strength < 1; for --detail, else estimated)"
    )
    p.add_argument(
        "--detail",
        type=float,
        default=0.0,
        help="0..1: add back what the model loses of your voice (clearer words, less of the target; a second decode per block)",
    )
    add_postfilter_argument(p)
    p.add_argument("--block-ms", type=float, default=35.0, help="block length (default 35 ms)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: run until Ctrl-C)")
    p.add_argument("--input-device", default=None, help="a device name or index (default: the system's)")
    p.add_argument("--output-device", default=None, help="a device name or index (default: the system's)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")


def _device(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


def run(args: argparse.Namespace) -> int:
    sd = sounddevice_module()
    if args.list_devices:
        print(sd.query_devices())
        return 0
    if not args.target:
        raise ValueError("--target is required (a voice name; `voicevae voices` lists them)")
    check_fraction(args.detail, "--detail")
    check_postfilter(args.postfilter, "--postfilter")
    inp, out = _device(args.input_device), _device(args.output_device)
    check_devices(sd, inp, out)  # before seconds of loading the model
    from .api import load

    vc = load(args.model, vocoder=args.vocoder, device="cpu", postfilter=args.postfilter)
    stream = vc.stream(args.target, block_ms=args.block_ms, strength=args.strength, source=args.source, detail=args.detail)
    print(
        f"live: {args.target}, blocks of {stream.block_ms:.1f} ms, algorithmic latency {stream.latency_ms:.0f} ms; Ctrl-C stops",
        file=sys.stderr,
    )
    try:
        overruns = convert_live(stream, sd, args.seconds, inp, out)
    except KeyboardInterrupt:
        return 0
    if overruns:
        print(f"live: {len(overruns)} late or dropped blocks (try a longer --block-ms)", file=sys.stderr)
    return 0
