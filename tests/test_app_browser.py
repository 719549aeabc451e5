"""End to end: app.py in a subprocess, driven by headless Chromium through Playwright."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voicevae.config import VAEConfig
from voicevae.corpora import read_manifest
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
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tone_corpus):
    """app.py serving a tiny untrained model with Griffin-Lim on a free loopback port; yields its URL."""
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("tiny")
    VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4)).save(model_dir / "model.pt")
    compute_vectors(VAE.load(model_dir / "model.pt"), read_manifest(tone_corpus), is_samples=2, progress=False).save(model_dir / "vectors.pt")
    port = free_port()
    log = (tmp_path_factory.mktemp("log") / "app.log").open("w+")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, str(REPO / "app.py"), "--model", str(model_dir), "--models-dir", str(model_dir.parent / "none"), "--vocoder", "griffinlim", "--device", "cpu", "--port", str(port)]
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
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_upload_convert_and_download(server, tmp_path):
    t = np.arange(RATE) / RATE
    source = tmp_path / "source.wav"
    wav = sum(np.sin(2 * np.pi * k * 150 * t) / k for k in range(1, 6))
    sf.write(source, (0.3 * wav / np.abs(wav).max()).astype(np.float32), RATE)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(server)
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
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
        finally:
            browser.close()
