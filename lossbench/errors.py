"""Errors that are the user's to fix, as opposed to bugs."""


class UserError(Exception):
    """Bad input (a name, a value, a path or a file): reported as one line, exit code 2."""

    exit_code = 2
