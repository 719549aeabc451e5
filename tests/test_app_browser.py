"""End to end: app.py in a subprocess, driven by headless Chromium through Playwright."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import soundfile as sf
import torch

from voicevae.config import VAEConfig
from voicevae.corpora import read_manifest
from voicevae.demo import MAX_ATTRIBUTE_SLIDERS
from voicevae.model import VAE
from voicevae.vectors import compute_vectors

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# No first-run work, no background traffic: the test machine may have no network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RATE = 22050

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} not installed (make apt installs it)", allow_module_level=True)
# Imported only once Chromium is known to be there, and never skipped: a missing
# Playwright is a broken install (the dev extra), not a reason to drop the test.
from playwright.sync_api import sync_playwright  # noqa: E402


class Server(NamedTuple):
    url: str
    model: str  # the served model's label in the model picker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tone_corpus):
    """app.py serving a tiny untrained model with Griffin-Lim on a free loopback port."""
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("tiny")
    VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4)).save(model_dir / "model.pt")
    compute_vectors(VAE.load(model_dir / "model.pt"), read_manifest(tone_corpus), is_samples=2, progress=False).save(
        model_dir / "vectors.pt"
    )
    port = free_port()
    log = (tmp_path_factory.mktemp("log") / "app.log").open("w+")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [
        sys.executable,
        str(REPO / "app.py"),
        "--model",
        str(model_dir),
        "--models-dir",
        str(model_dir.parent / "none"),
        "--vocoder",
        "griffinlim",
        "--device",
        "cpu",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"app.py did not come up at {url}:\n{log.read()}")
                time.sleep(0.5)
        yield Server(url, model_dir.name)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:  # one per module: Playwright's sync API allows one at a time
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server.url)
    yield page
    page.close()


def test_upload_convert_and_download(page, tmp_path):
    """The main path: upload a clip, pick a speaker, convert, play and download the result."""
    t = np.arange(RATE) / RATE
    source = tmp_path / "source.wav"
    wav = sum(np.sin(2 * np.pi * k * 150 * t) / k for k in range(1, 6))
    sf.write(source, (0.3 * wav / np.abs(wav).max()).astype(np.float32), RATE)

    page.locator("#source input[type=file]").set_input_files(str(source))
    page.get_by_test_id("audio-player-Source voice").wait_for(state="attached", timeout=15_000)

    page.locator("#speaker input").click()
    page.get_by_role("option", name="spk2").click()
    page.locator("#convert").click()

    page.get_by_text("Converted 1.0 s to spk2").wait_for(timeout=30_000)
    # The waveform player (inside a shadow root, which locators pierce) gets the audio as a blob.
    player = page.locator("#output audio[src]")
    player.wait_for(state="attached", timeout=10_000)
    page.wait_for_function("el => el.duration > 0.5", arg=player.element_handle(), timeout=10_000)
    link = page.locator("#output a[download]")
    assert link.get_attribute("download").endswith("_to_spk2.wav")
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    out_path = tmp_path / "downloaded.wav"
    out_path.write_bytes(response.body())
    out, rate = sf.read(out_path)
    assert rate == RATE and out.ndim == 1
    inp, _ = sf.read(source)
    assert out.shape != inp.shape or not np.allclose(out, inp, atol=1e-3)
    # Both spectrograms rendered.
    assert page.locator("#source_mel img").count() == 1 and page.locator("#output_mel img").count() == 1
    page.get_by_text("Attributes").click()  # show the attribute sliders in the screenshot
    page.get_by_label("gender=f").first.wait_for(timeout=5_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)


def test_bad_uploads_are_reported_in_the_page(page, tmp_path):
    """A silent clip and an oversized one each get the handler's message in the status panel."""
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(RATE, np.float32), RATE)
    page.locator("#source input[type=file]").set_input_files(str(silent))
    page.get_by_test_id("audio-player-Source voice").wait_for(state="attached", timeout=15_000)
    page.locator("#convert").click()
    page.locator("#status").get_by_text("silent.wav: is silent").wait_for(timeout=15_000)

    # Over the 20 MB default: refused by the handler, which says so in the status panel (it stays).
    big = tmp_path / "big.wav"
    sf.write(big, np.full(5_500_000, 0.1, np.float32), RATE, subtype="FLOAT")
    page.locator("#source").get_by_role("button", name="Clear").click()
    page.locator("#source input[type=file]").set_input_files(str(big))
    page.get_by_test_id("audio-player-Source voice").wait_for(state="attached", timeout=30_000)
    page.locator("#convert").click()
    page.locator("#status").get_by_text("'big.wav' is 22.0 MB; the limit is 20 MB").wait_for(timeout=15_000)


def test_api_refuses_server_paths_it_was_not_sent(server, tone_corpus):
    """A client naming a file on the server (rather than uploading it) is refused."""
    on_server = str(tone_corpus.parent / "spk0" / "clip0.wav")
    data = [
        {"path": on_server, "meta": {"_type": "gradio.FileData"}},
        "named speaker",
        "spk1",
        None,
        0,
        1.0,
        server.model,
        "griffinlim",
    ]
    # retrieval, pitch shift, match pitch, detail, postfilter, content norm: the page sends all six
    data += [0.0] * MAX_ATTRIBUTE_SLIDERS + [0.0, 0.0, False, 0.0, 0.0, 0.0]
    call = server.url + "gradio_api/call/convert"
    request = urllib.request.Request(call, data=json.dumps({"data": data}).encode(), headers={"Content-Type": "application/json"})
    event = json.load(urllib.request.urlopen(request, timeout=10))["event_id"]
    reply = urllib.request.urlopen(f"{call}/{event}", timeout=30).read().decode()
    assert "event: error" in reply
    assert str(tone_corpus.parent) not in reply and "/" not in reply.split("data:", 1)[-1]  # no server path echoed


def test_live_tab_streams_the_microphone_through_the_converter(server, playwright, tmp_path):
    """Chromium's fake microphone (a beep) streamed to the live handler; its status counts the seconds heard."""
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server.url)
        page.get_by_text("Live conversion (microphone)").click()
        page.locator("#live_mic").get_by_role("button", name="Record").click()
        page.locator("#live_status").get_by_text("Live to").wait_for(timeout=30_000)
        page.wait_for_function(
            "() => /([0-9.]+) s heard/.test(document.querySelector('#live_status').innerText)"
            " && parseFloat(document.querySelector('#live_status').innerText.match(/([0-9.]+) s heard/)[1]) >= 1.0",
            timeout=30_000,
        )
        # Converted audio came back: the streaming output offers it as a file.
        link = page.locator("#live_out a[download]")
        link.wait_for(state="attached", timeout=15_000)
        response = page.request.get(link.get_attribute("href"))
        assert response.ok
        out_path = tmp_path / "live.wav"
        out_path.write_bytes(response.body())
        out, rate = sf.read(out_path)
        assert rate == RATE and out.size > 0 and np.isfinite(out).all()
    finally:
        browser.close()
