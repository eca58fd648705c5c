"""Checks of user-given values: each failure is one line naming the key, the
bad value and what is valid."""

import math
import numbers

from lossbench.errors import UserError


def interval(low, high, low_inclusive, high_inclusive) -> str:
    left = "-inf" if low is None else f"{low:g}"
    right = "inf" if high is None else f"{high:g}"
    opening = "[" if low_inclusive and low is not None else "("
    closing = "]" if high_inclusive and high is not None else ")"
    return f"{opening}{left}, {right}{closing}"


def check_number(key: str, value, low=None, high=None, low_inclusive=True, high_inclusive=True,
                 integer: bool = False, why: str = ""):
    """``value`` if it is a number (an integer if asked) in the interval, else a UserError."""
    kind = "an integer" if integer else "a number"
    interval_text = interval(low, high, low_inclusive, high_inclusive)
    # infinity is outside every interval here: "[0, inf)" means any finite number from 0
    valid_type = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if valid_type and integer and value != int(value):
        valid_type = False
    if not valid_type:
        raise UserError(f"{key}={value!r} is invalid: it must be {kind} in {interval_text}{why}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        raise UserError(f"{key}={value} is invalid: it must be in {interval_text}{why}")
    return int(value) if integer else value


def check_flag(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{key}={value!r} is invalid: it must be true or false")
    return value


def _spelled(choice) -> str:
    # as a user types it on the command line
    return str(choice).lower() if isinstance(choice, bool) else str(choice)


def check_choice(key: str, value, choices) -> str:
    # by type as well as value: 1 == True, but trainer.compile=1 is not "true"
    if not any(type(value) is type(c) and value == c for c in choices):
        raise UserError(f"{key}={value!r} is invalid: valid values are {', '.join(map(_spelled, choices))}")
    return value
