"""Ranges for every numeric option, shared by the command line (argparse types) and the library
(the config dataclasses check the same ranges), so `--lr inf`, `--threads 0` or `--dropout 2`
is refused up front with one line naming the flag, whichever way the value came in.
"""
from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass

from fcnedge.runtime.errors import InputError


@dataclass(frozen=True)
class Range:
    """An allowed interval of numbers (NaN never is; infinity only as an open upper end)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            return (f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        return "a finite integer" if self.integer else "a finite number"

    def contains(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.integer and not float(value).is_integer():
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or (value < self.high or (not self.high_open
                                                            and value == self.high))

    def check(self, value, name: str):
        """Returns `value` when it lies in the range, else raises InputError naming `name` (a
        parameter, which the command line words as its flag)."""
        if not self.contains(value):
            raise InputError(f"got {_plain(value)}, expected {self.describe()}", name)
        return value


def _plain(value) -> str:
    """A value as a user would type it (no numpy reprs such as np.int32(2))."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return repr(value)
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def flag_type(allowed: Range):
    """An argparse `type=` that parses a number and checks it lies in `allowed`."""
    def parse(text: str):
        try:
            value = int(text) if allowed.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}, expected {allowed.describe()}")
        if not allowed.contains(value):
            raise argparse.ArgumentTypeError(f"got {text}, expected {allowed.describe()}")
        return value

    parse.__name__ = "integer" if allowed.integer else "number"
    return parse


def check_optional(value, allowed: Range, name: str):
    """`allowed.check` for a setting whose None means "the default"."""
    return None if value is None else allowed.check(value, name)


COUNT = Range(1, integer=True)                  # images, epochs, threads, frames, ...
ZERO_OR_MORE = Range(0, integer=True)           # warm-up runs, retries, seeds, 0 = off
POSITIVE = Range(0, low_open=True)              # learning rates, seconds, scales
NON_NEGATIVE = Range(0)                         # weight decay, warm-up epochs, tolerances
UNIT = Range(0, 1)                              # probabilities, opacities, strengths
BELOW_ONE = Range(0, 1, high_open=True)
PERCENT = Range(0, 100)
FRAME_RATE = Range(0, 1000, low_open=True)
ANY_NUMBER = Range()


def _means_not_given(default) -> bool:
    # Identity, not equality: a default of 0 or 0.0 is a value worth showing, False is "off".
    return default is None or default is False or default is argparse.SUPPRESS


class DefaultOnceFormatter(argparse.HelpFormatter):
    """Shows each flag's default once: appended unless the help already says it, and never
    for a flag whose default means "off" or "not given"."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text.lower() or _means_not_given(action.default)
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)".lstrip()


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported as one line (no usage block) and exit 2, and
    every default shown once in --help (DefaultOnceFormatter)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultOnceFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        if action.help is None and action.option_strings and not _means_not_given(
                action.default):
            action.help = "(default: %(default)s)"     # a flag without help still shows it
        return action

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_common(parser: argparse.ArgumentParser, json_result: bool = True) -> None:
    """Flags every subcommand has."""
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="more logging, and a traceback on failure")
    if json_result:
        parser.add_argument("--json", metavar="PATH", help="also write the result as JSON here")
