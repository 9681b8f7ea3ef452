"""The `fcnedge` command: one subcommand per job, each a thin layer over the library.

Exit codes (the contract in ../shared/docs/cli.md): 0 success, 2 bad arguments or input (one
line naming the file or flag), 1 any other failure (one line; the traceback with --verbose).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from fcnedge import INTERRUPTED_EXIT, __version__
from fcnedge.runtime.errors import InputError, flag_message, flag_text
from fcnedge.runtime.fileio import check_writable_location, write_json_atomic
from fcnedge.runtime.quiet import silence_native_stderr
from fcnedge.runtime.validate import OneLineParser, add_common


def _subcommand_modules():
    # Each part registers its own subcommands; none of these imports TensorFlow at import time.
    from fcnedge import demo
    from fcnedge.benchmarks import cli as bench_cli
    from fcnedge.convert import cli as convert_cli
    from fcnedge.runtime import cli as runtime_cli
    from fcnedge.train import cli as train_cli
    from fcnedge.train import eval_cli

    return [train_cli, eval_cli, convert_cli, runtime_cli, bench_cli, demo]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="fcnedge", description="Train, quantize, run and benchmark FCN street-scene "
        "segmentation for edge devices.")
    parser.add_argument("--version", action="version", version=f"fcnedge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _subcommand_modules():
        # Handed down, so no part imports this module back (the CLI sits on top of them).
        module.add_parsers(subparsers, add_common)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter hides our one-line messages; users can still set it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:       # --help, --version, or a bad flag (its one line printed)
        return stop.code if isinstance(stop.code, int) else 2
    if argv is None and not args.verbose:
        # The real command line (not a test calling main): see runtime/quiet.py.
        silence_native_stderr()
    args.argv = list(sys.argv[1:] if argv is None else argv)   # for launchers that re-run it
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    if not args.verbose:
        # TensorFlow's Python side logs through these at INFO ("Assets written to", "Sharding
        # callback duration", deprecation notes): library chatter, not the command's progress.
        for library in ("tensorflow", "absl", "h5py", "matplotlib"):
            logging.getLogger(library).setLevel(logging.ERROR)
    name = " ".join(part for part in (args.command, getattr(args, "action", None)) if part)
    try:
        if getattr(args, "json", None):
            check_writable_location(args.json, "json")
        result = args.handler(args)
        if getattr(args, "json", None) and result is not None:
            write_json_atomic(args.json, result)
        # Stopped by Ctrl-C or SIGTERM with its outputs finalised: a script can tell.
        return INTERRUPTED_EXIT if isinstance(result, dict) and result.get("interrupted") else 0
    except InputError as err:
        if args.verbose:
            traceback.print_exc()
        # A library check names its parameter; the command's own map names the flag instead.
        message = flag_message(err, getattr(args, "param_flags", {}))
        print(f"fcnedge {name}: error: {message}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ("tensorflow", "tf_keras", "matplotlib",
                                                   "tensorflow_model_optimization"):
            raise
        print(f"fcnedge {name}: failed: this needs the training extra ({err.name} is not "
              "installed): pip install 'fcnedge[train]'", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fcnedge {name}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except Exception as err:  # the last line of defence: one line, exit 1
        if args.verbose:
            traceback.print_exc()
        text = str(err)
        if type(err).__module__.startswith("fcnedge."):
            # Ours may mention parameters (runtime.errors.mention); another library's backticks
            # are its own.
            text = flag_text(text, getattr(args, "param_flags", {}))
        text = text.strip()
        message = text.splitlines()[0] if text else type(err).__name__
        print(f"fcnedge {name}: failed: {message} (run with --verbose for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
