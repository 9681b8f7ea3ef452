"""Errors the command line turns into one line and exit code 2."""
from __future__ import annotations

import re

# A parameter named inside a message, as `mention` writes it.
_MENTION = re.compile(r"`([a-z][a-z0-9_]*)`")


class InputError(ValueError):
    """Bad user input: a file, folder or argument that is not what was expected.

    The message names the file or argument and what was expected, so the CLI can print it
    as-is on one line. A library check of a parameter sets `param` and words the message
    after it ("learning_rate: got inf, expected ..."), or, with `about`, after the value it
    is about ("model /x.tflite: file not found"); the command line then names the flag that
    set the parameter instead (`flag_message`), so the library never has to know its flags.
    """

    def __init__(self, message: str, param: str | None = None, *, separator: str = ": "):
        self.param, self.detail, self.separator = param, message, separator
        super().__init__(f"{param}{separator}{message}" if param else message)

    @classmethod
    def about(cls, param: str, value, problem: str) -> "InputError":
        """An error about the value a parameter holds (a path, a source, a list of names)."""
        return cls(f"{value}: {problem}", param, separator=" ")

    def renamed(self, param: str) -> "InputError":
        """The same error about another parameter (one that handed its value on)."""
        return InputError(self.detail, param, separator=self.separator)


def mention(param: str) -> str:
    """Another parameter named inside a message ("pass `overwrite` to replace them"): a
    library caller reads the parameter, the command line the flag that sets it."""
    return f"`{param}`"


def flag_message(err: InputError, flags: dict[str, str]) -> str:
    """The error worded for the command line: its parameter, and any it mentions, replaced by
    the flag that sets it, `flags[param]`, or by default `--param-name` (the flags are named
    after the parameters)."""
    def flag_of(param: str) -> str:
        return flags.get(param, "--" + param.replace("_", "-"))

    detail = _MENTION.sub(lambda found: flag_of(found.group(1)), err.detail)
    if not err.param:
        return detail
    return f"{flag_of(err.param)}{err.separator}{detail}"
