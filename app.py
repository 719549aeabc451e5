"""Launch the voicevae Gradio demo.

    python app.py                                  # shipped default model, http://127.0.0.1:7860
    python app.py --model runs/synth_cycle --vocoder griffinlim --port 7861

Serves on loopback only unless --host says otherwise; never makes a share link.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Gradio reads this at import time; the demo must not phone home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from voicevae.api import DEFAULT_VOCODER  # noqa: E402  (after the environment is set)
from voicevae.demo import Demo, DemoConfig, DemoError  # noqa: E402

UPLOAD_CAP_FACTOR = 10  # Gradio's own upload cap, in multiples of --max-upload-mb


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--models-dir", type=Path, default=Path("models"), help="folder whose */model.pt are offered in the model picker"
    )
    p.add_argument("--model", type=Path, default=None, help="a model folder (model.pt + vectors.pt) selected at start")
    p.add_argument(
        "--vocoder",
        default=DEFAULT_VOCODER,
        help=f"vocoder selected at start: fast, hifigan or griffinlim (default {DEFAULT_VOCODER})",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="uploads larger than this are refused")
    p.add_argument("--max-seconds", type=float, default=60.0, help="clips longer than this are refused")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = DemoConfig(
        models_dir=args.models_dir,
        model=args.model,
        vocoder=args.vocoder,
        device=args.device,
        max_upload_mb=args.max_upload_mb,
        max_seconds=args.max_seconds,
    )
    try:
        blocks = Demo(config).build()
    except (FileNotFoundError, ValueError, DemoError) as e:
        print(f"app.py: {e}", file=sys.stderr)
        return 2
    # One conversion per event at a time: each already uses every CPU thread torch is given.
    blocks.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        # Gradio's upload route refuses only what is far over the limit (a brief
        # toast); a file between the limit and that cap reaches the handler,
        # whose refusal names the file and its size in the status panel.
        max_file_size=f"{UPLOAD_CAP_FACTOR * args.max_upload_mb:g}mb",
        allowed_paths=[],
        # Handlers put their own refusals in the page; what escapes them (Gradio's
        # refusal of a path on the server among it) must not echo server paths.
        show_error=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
