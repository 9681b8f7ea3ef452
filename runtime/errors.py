"""Errors the command line turns into one line and exit code 2."""


class InputError(ValueError):
    """Bad user input: a file, folder or argument that is not what was expected.

    The message names the file or argument and what was expected, so the CLI can print it
    as-is on one line.
    """
