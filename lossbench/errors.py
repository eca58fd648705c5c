"""Errors that are the user's to fix, as opposed to bugs."""


class UserError(Exception):
    """Bad input (a name, a value, a path or a file): reported as one line, exit code 2."""

    exit_code = 2


def one_line(text, limit: int = 300) -> str:
    """``text`` (an exception's message, say) on one line, cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
