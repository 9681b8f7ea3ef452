"""fcnedge: train, quantize, run and benchmark FCN street-scene segmentation on edge devices."""

__version__ = "0.1.0"

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
