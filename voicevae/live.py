"""`voicevae live`: the microphone converted to the speakers as you speak (sounddevice + vc.stream).

    voicevae live --target flite_slt [--block-ms 35] [--seconds 60]
    voicevae live --list-devices

One duplex PortAudio stream at the model's rate, one block per callback: the
callback hands the block to `StreamingConverter.process` and plays what comes
back, so what you hear is your voice `latency_ms` (plus compute) later.
"""

from __future__ import annotations

import argparse
import sys
import time
from types import ModuleType
from typing import Any

import numpy as np

from .api import DEFAULT_VOCODER
from .realtime import StreamingConverter


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


def make_callback(stream: StreamingConverter, overruns: list[str]):
    """The PortAudio callback: indata (frames, 1) -> outdata (frames, 1) through the stream."""

    def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status:
            overruns.append(str(status))  # xruns: the callback was late, or the device dropped samples
        out = stream.process(indata[:, 0]).numpy()
        outdata[:, 0] = 0.0
        outdata[: out.size, 0] = out[:frames]

    return callback


def convert_live(
    stream: StreamingConverter,
    sd: Any,
    seconds: float | None,
    input_device: str | int | None = None,
    output_device: str | int | None = None,
) -> list[str]:
    """Convert the input device to the output device until `seconds` pass (None: until Ctrl-C); returns xrun notes."""
    check_devices(sd, input_device, output_device)
    overruns: list[str] = []
    with sd.Stream(
        samplerate=stream.sample_rate,
        blocksize=stream.block,
        channels=1,
        dtype="float32",
        device=(input_device, output_device),
        callback=make_callback(stream, overruns),
    ):
        start = time.monotonic()
        while seconds is None or time.monotonic() - start < seconds:
            time.sleep(0.1)
    return overruns


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model.pt or a model folder (default: the shipped model)")
    p.add_argument(
        "--vocoder", default=DEFAULT_VOCODER, help=f"vocoder (default {DEFAULT_VOCODER}; the others are too slow live)"
    )
    p.add_argument("--target", help="a voice name (`voicevae voices`)")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--source", help="your own voice as a name in the vector file (needed for --strength < 1)")
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
    inp, out = _device(args.input_device), _device(args.output_device)
    check_devices(sd, inp, out)  # before seconds of loading the model
    from .api import load

    vc = load(args.model, vocoder=args.vocoder, device="cpu")
    stream = vc.stream(args.target, block_ms=args.block_ms, strength=args.strength, source=args.source)
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
