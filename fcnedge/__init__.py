"""fcnedge: train, quantize, run and benchmark FCN street-scene segmentation on edge devices."""

from pathlib import Path as _Path

__version__ = "0.1.0"


def _checkout_parts() -> list[str]:
    """The checkout's root when this file is the checkout's fcnedge/ (not an installed copy).

    Installed, fcnedge.runtime and its siblings lie inside this package. In a checkout they
    are top-level folders beside it (setup.py's package_dir), and Python, which puts the
    current folder first on sys.path, finds this folder before any installed fcnedge: without
    the root on __path__, `python -m fcnedge` run from the checkout could not import a part.
    """
    root = _Path(__file__).resolve().parent.parent
    is_checkout = (root / "setup.py").is_file() and (root / "runtime" / "__init__.py").is_file()
    return [str(root)] if is_checkout else []


__path__ = [*__path__, *_checkout_parts()]

INTERRUPTED_EXIT = 130     # 128 + SIGINT, as shells report it; also after SIGTERM


def console_main() -> int:
    """The `fcnedge` command. Ctrl-C while the command line is still loading (before
    fcnedge.cli has its own handler) ends with the same one line as later, not a traceback."""
    import sys

    try:
        from fcnedge.cli import main

        return main()
    except KeyboardInterrupt:
        print("fcnedge: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
