"""Live conversion (voicevae/realtime.py): fixed delay, block sizes, and closeness to offline conversion.

The stream cannot wait for the full lookahead of the centred convolutions,
so its output is not the offline samples; these tests bound the difference on
the shipped model and check that it shrinks to the offline output as the
stream is given more context (benchmarks/realtime_latency.py measures it).
"""

from pathlib import Path

import pytest
import torch

import voicevae
from voicevae.api import VoiceConverter
from voicevae.metrics import mel_l1
from voicevae.realtime import StreamingConverter

EXAMPLES = Path(voicevae.__file__).parent / "assets" / "default" / "examples"
# Mean absolute log-mel difference (nats, over the top 70 dB) from offline
# conversion, measured on the four shipped examples to flite_slt: 0.31-0.50 at
# the default settings, 0.09-0.21 with full lookahead and history.
DEFAULT_TOLERANCE = 0.55
FULL_CONTEXT_TOLERANCE = 0.25
FULL_CONTEXT = dict(vae_lookahead=32, vocoder_lookahead=32, vae_history=1024, vocoder_history=256)


@pytest.fixture(scope="module")
def vc() -> VoiceConverter:
    return voicevae.load(vocoder="fast", device="cpu")


def same_samples_atol(vc: VoiceConverter, exact: float) -> float:
    """How close two runs over the same samples come: `exact`, or for a model that reads F0 (the default) 1e-2.

    Observed on the shipped model: RAPT (pysptk) gave one frame of the same
    3072 samples an F0 differing in the fifth digit inside a stream and
    outside it, and the harmonic source carries that to the output samples
    (up to 7e-3). The cause was not pinned down; SPTK's RAPT, from the ESPS
    get_f0 code, keeps state between calls, a likely one.
    """
    return 1e-2 if vc.model.config.pitch_input else exact


def run_stream(stream: StreamingConverter, wav: torch.Tensor, block: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    outs = [stream.process(wav[i : i + block]) for i in range(0, wav.numel(), block)]
    return outs, stream.flush()


def logmel_distance(vc: VoiceConverter, a: torch.Tensor, b: torch.Tensor) -> float:
    return mel_l1(a, b, vc.frontend, dynamic_range=8.0)


@pytest.mark.parametrize("clip", ["espeak_us_m1.wav", "flite_awb.wav"])
def test_stream_matches_offline_conversion_at_its_stated_delay(vc, clip):
    wav = vc.load_audio(EXAMPLES / clip)
    offline = vc.convert(wav, "flite_slt").cpu()
    stream = vc.stream("flite_slt")
    outs, tail = run_stream(stream, wav, stream.block)
    streamed = torch.cat([*outs, tail])
    aligned = logmel_distance(vc, offline, streamed[stream.delay :])
    assert aligned < DEFAULT_TOLERANCE
    # A frame either way is clearly worse: the stated delay is the real one.
    for shift in (-256, 256):
        assert logmel_distance(vc, offline, streamed[stream.delay + shift :]) > aligned + 0.1
    # Given the context offline conversion has, the stream comes close to it.
    full = vc.stream("flite_slt", block_ms=232, **FULL_CONTEXT)
    outs, tail = run_stream(full, wav, full.block)
    assert logmel_distance(vc, offline, torch.cat([*outs, tail])[full.delay :]) < FULL_CONTEXT_TOLERANCE


def test_blocks_in_equal_blocks_out_and_the_total_is_the_input_delayed(vc):
    wav = vc.load_audio(EXAMPLES / "festival_ked.wav")[: 22050 * 2 + 100]
    stream = vc.stream("flite_rms", block_ms=20)
    assert stream.block == 2 * 256 and stream.delay == (2 + 1 + 1) * 256
    assert stream.latency_ms == pytest.approx(1000 * (stream.block + stream.delay) / 22050)
    outs, tail = run_stream(stream, wav, stream.block)
    assert all(o.numel() == stream.block for o in outs[:-1])  # the last input block is partial
    frames = wav.numel() // 256
    assert sum(o.numel() for o in outs) + tail.numel() == frames * 256 + stream.delay
    # Uneven pieces give the same samples: only whole blocks are converted.
    stream.reset()
    pieces = [wav[:300], wav[300:1999], wav[1999:]]
    uneven = torch.cat([*(stream.process(p) for p in pieces), stream.flush()])
    assert torch.allclose(uneven, torch.cat([*outs, tail]), atol=same_samples_atol(vc, 1e-6))


def test_stream_targets_follow_the_voice_arithmetic(vc):
    a = vc.stream("flite_slt")
    assert torch.allclose(a.speaker[0], vc.target_vector("flite_slt"))
    half = vc.stream("flite_slt", strength=0.5, source="flite_rms")
    expected = 0.5 * (vc.target_vector("flite_slt") + vc.target_vector("flite_rms"))
    assert torch.allclose(half.speaker[0], expected, atol=1e-6)


def test_bad_stream_settings_are_refused_by_name(vc):
    with pytest.raises(ValueError, match="strength 0.5 needs"):
        vc.stream("flite_slt", strength=0.5)
    with pytest.raises(ValueError, match="block_ms"):
        vc.stream("flite_slt", block_ms=2)
    with pytest.raises(ValueError, match="vae_lookahead"):
        vc.stream("flite_slt", vae_lookahead=-1)
    with pytest.raises(voicevae.vectors.UnknownName, match="flite_sl"):
        vc.stream("flite_sl")
    with pytest.raises(ValueError, match="NaN"):
        vc.stream("flite_slt").process(torch.full((768,), float("nan")))
    with pytest.raises(ValueError, match=r"detail must be in \[0, 1\]"):
        vc.stream("flite_slt", detail=1.5)


@pytest.mark.parametrize("block_ms", [500, 1000])
def test_blocks_longer_than_the_history_still_convert_every_frame(vc, block_ms):
    wav = vc.load_audio(EXAMPLES / "flite_awb.wav")
    offline = vc.convert(wav, "flite_slt").cpu()
    stream = vc.stream("flite_slt", block_ms=block_ms)
    outs, tail = run_stream(stream, wav, stream.block)
    assert all(o.numel() == stream.block for o in outs[:-1])
    streamed = torch.cat([*outs, tail])
    assert streamed.numel() == wav.numel() // 256 * 256 + stream.delay
    # Long blocks give each frame more context than short ones, not less.
    assert logmel_distance(vc, offline, streamed[stream.delay :]) < DEFAULT_TOLERANCE


def test_a_flushed_stream_must_be_reset_and_integer_pcm_is_refused(vc):
    stream = vc.stream("flite_slt")
    stream.process(torch.zeros(2000))
    stream.flush()
    for call in (lambda: stream.process(torch.zeros(768)), stream.flush):
        with pytest.raises(ValueError, match="reset"):
            call()
    stream.reset()
    assert stream.process(torch.zeros(768)).numel() == 768
    with pytest.raises(ValueError, match="float samples"):
        stream.process(torch.zeros(768, dtype=torch.int16))


def test_changing_the_voice_mid_stream_keeps_every_sample(vc):
    wav = vc.load_audio(EXAMPLES / "flite_awb.wav")
    streams = {name: vc.stream(name) for name in ("flite_slt", "flite_rms")}
    whole = {}
    for name, st in streams.items():
        outs, tail = run_stream(st, wav, st.block)
        whole[name] = torch.cat([*outs, tail])
    stream = vc.stream("flite_slt")
    half = wav.numel() // 2 // stream.block * stream.block
    first = stream.process(wav[:half])
    stream.set_speaker(vc.target_vector("flite_rms"))
    switched = torch.cat([first, stream.process(wav[half:]), stream.flush()])
    assert switched.numel() == whole["flite_rms"].numel()
    # Before the switch, the first voice; once the vocoder's history holds only new frames, the second.
    assert torch.allclose(switched[:half], whole["flite_slt"][:half], atol=same_samples_atol(vc, 1e-6))
    settle = half + stream.delay + (stream.vocoder_history + 8) * 256
    if vc.model.config.pitch_input:  # F0 tracked over other calls moves a few frames' harmonics (same_samples_atol)
        to_second = logmel_distance(vc, whole["flite_rms"][settle:], switched[settle:])
        assert to_second < 0.5 * logmel_distance(vc, whole["flite_slt"][settle:], switched[settle:])
    else:
        assert torch.allclose(switched[settle:], whole["flite_rms"][settle:], atol=1e-5)
        assert not torch.allclose(switched[settle:], whole["flite_slt"][settle:], atol=1e-2)


@pytest.mark.parametrize("detail", [0.0, 0.5])
def test_frozen_graphs_give_the_eager_samples(vc, detail):
    wav = vc.load_audio(EXAMPLES / "festival_ked.wav")
    out = {}
    for frozen in (True, False):
        stream = vc.stream("flite_slt", frozen=frozen, detail=detail)
        assert (stream.networks is not None) == frozen
        outs, tail = run_stream(stream, wav, stream.block)
        out[frozen] = torch.cat([*outs, tail])
    assert torch.allclose(out[True], out[False], atol=1e-5)


def test_a_stream_keeps_the_source_detail_as_offline_conversion_does(vc):
    wav = vc.load_audio(EXAMPLES / "flite_awb.wav")
    offline = {d: vc.convert(wav, "flite_slt", detail=d).cpu() for d in (0.0, 1.0)}
    # Given the offline context and the clip's own latent, the stream comes close to offline detail...
    full = vc.stream("flite_slt", block_ms=232, source=[wav], detail=1.0, **FULL_CONTEXT)
    assert torch.allclose(full.fixed_own[0], vc.encode_speaker(wav), atol=1e-5)
    outs, tail = run_stream(full, wav, full.block)
    streamed = torch.cat([*outs, tail])[full.delay :]
    to_detail = logmel_distance(vc, offline[1.0], streamed)
    assert to_detail < FULL_CONTEXT_TOLERANCE
    # ...and the detail is what brings it there: without it the stream stays the plain conversion.
    assert logmel_distance(vc, offline[0.0], streamed) > to_detail + 0.1


def test_a_stream_estimates_the_speakers_own_latent_as_it_goes(vc):
    wav = vc.load_audio(EXAMPLES / "flite_awb.wav")
    given = vc.stream("flite_slt", source=[wav], detail=1.0)
    running = vc.stream("flite_slt", detail=1.0)
    plain = vc.stream("flite_slt")
    out = {}
    for name, stream in (("given", given), ("running", running), ("plain", plain)):
        outs, tail = run_stream(stream, wav, stream.block)
        out[name] = torch.cat([*outs, tail])
    # Whole spans of the history went into the estimate, and it lands near the clip's own latent.
    assert running.own_frames == wav.numel() // 256 // running.vae_history * running.vae_history > 0
    estimate = running.own_sum[0] / running.own_frames
    own, target = vc.encode_speaker(wav), vc.target_vector("flite_slt")
    assert (estimate - own).norm() < 0.5 * (estimate - target).norm()
    # So once spans are in (its first second reads the window so far), the output is about
    # the one given the clip's latent: measured 0.18 from it, where the plain stream is 0.50.
    later = wav.numel() // 2
    gap = logmel_distance(vc, out["given"][later:], out["running"][later:])
    assert gap < 0.5 * logmel_distance(vc, out["given"][later:], out["plain"][later:])
    running.reset()
    assert running.own_frames == 0 and running.own_next == 0
