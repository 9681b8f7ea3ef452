"""Errors the command line turns into one line and exit code 2."""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a file, folder or argument that is not what was expected.

    The message names the file or argument and what was expected, so the CLI can print it
    as-is on one line. A library check of a parameter (a config field) sets `param` and words
    the message after it; the command line then names the flag that set it instead
    (`flag_message`), so the library never has to know its flags.
    """

    def __init__(self, message: str, param: str | None = None):
        self.param, self.detail = param, message
        super().__init__(f"{param}: {message}" if param else message)


def flag_message(err: InputError, flags: dict[str, str]) -> str:
    """The error worded for the command line: its parameter replaced by the flag in `flags`
    (parameter -> flag) that sets it, when there is one."""
    flag = flags.get(err.param) if err.param else None
    return f"{flag}: {err.detail}" if flag else str(err)
