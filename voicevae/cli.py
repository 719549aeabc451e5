"""`voicevae` command line: one subcommand per stage.

Each subcommand lives in the module that does the work; that module exposes
`add_arguments(parser)` and `run(args) -> int`. Modules are imported only
for the command that runs, so `voicevae --help` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "make-corpus": ("voicevae.synthetic", "synthesise the offline multi-speaker corpus with Debian voices"),
    "make-recorded": ("voicevae.recorded", "corpus of real recorded speech from installed Debian packages"),
    "scan": ("voicevae.corpora", "write a manifest for a VCTK / LibriTTS / LibriSpeech / folder corpus"),
    "merge-manifests": ("voicevae.corpora", "merge manifests of several corpora into one (speakers must not clash)"),
    "train": ("voicevae.training.vae", "train the VAE from a YAML config"),
    "train-vocoder": ("voicevae.training.vocoder", "train the fast Vocos-style vocoder"),
    "eval-vocoder": ("voicevae.vocoder.evaluate", "copy-synthesis evaluation of the vocoders"),
    "adapt": ("voicevae.training.adapt", "fine-tune a model to one new speaker's recordings"),
    "vectors": ("voicevae.vectors", "compute attribute/speaker vectors from a labelled manifest"),
    "convert": ("voicevae.commands", "convert clips to a target voice"),
    "resynth": ("voicevae.commands", "encode, decode and vocode a folder of clips"),
    "score": ("voicevae.commands", "importance-sampled log p(x) per clip"),
    "voices": ("voicevae.commands", "list a model's voices (and with --attributes its attribute directions)"),
    "evaluate": ("voicevae.evaluate", "objective voice-conversion evaluation protocol"),
    "live": ("voicevae.live", "convert the microphone to the speakers as you speak"),
    "export": ("voicevae.export", "write the converter as a TorchScript or ONNX graph"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("voicevae")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, str | None]:
    parser = argparse.ArgumentParser(prog="voicevae", description="voice cloning and resynthesis with a VAE")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = importlib.import_module(module)
            adder = getattr(mod, f"add_arguments_{name.replace('-', '_')}", None) or mod.add_arguments
            adder(p)
    return parser, chosen


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, chosen = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    runner = getattr(module, f"run_{args.command.replace('-', '_')}", None) or module.run
    try:
        return int(runner(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        # Our own errors (ConfigError, AudioError, CheckpointError) are ValueErrors
        # whose message names the file or setting; show that, not a traceback.
        print(f"voicevae {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
