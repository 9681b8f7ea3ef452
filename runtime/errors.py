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


def _flag_of(param: str, flags: dict[str, str]) -> str:
    return flags.get(param, "--" + param.replace("_", "-"))


def flag_text(text: str, flags: dict[str, str]) -> str:
    """A message's `mention`s worded as the flags that set them (any error's, not only an
    InputError's: a failed download may say which option to pass instead)."""
    return _MENTION.sub(lambda found: _flag_of(found.group(1), flags), text)


def flag_message(err: InputError, flags: dict[str, str]) -> str:
    """The error worded for the command line: its parameter, and any it mentions, replaced by
    the flag that sets it, `flags[param]`, or by default `--param-name` (the flags are named
    after the parameters)."""
    detail = flag_text(err.detail, flags)
    if not err.param:
        return detail
    return f"{_flag_of(err.param, flags)}{err.separator}{detail}"
