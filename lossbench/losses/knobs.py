"""A loss's knobs, each defined once: its default, what is valid, where the
default comes from and a line of help. Each loss's table (in knob_tables.py)
drives the constructor's checks, the ``loss=NAME`` config node, ``lossbench
losses NAME`` and the error a bad value gets."""

from dataclasses import dataclass
from typing import Any, Callable

from lossbench.checks import check_choice, check_number, interval


@dataclass(frozen=True)
class Knob:
    default: Any
    help: str
    source: str = ""  # where the default comes from: a paper's section or table, the authors' code
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    integer: bool = False
    choices: tuple = ()  # the valid values of a choice or a flag
    # A value the interval and choices cannot describe: check(key, value,
    # num_classes) returns it checked; ``valid`` says in words what it takes.
    check: Callable | None = None
    valid: str = ""
    kept: bool = True  # kept as an attribute of the loss (False: the loss derives its own)

    def valid_values(self) -> str:
        if self.valid:
            return self.valid
        if self.choices:
            return " | ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices)
        if self.low is None and self.high is None:
            return "an integer" if self.integer else "a number"
        text = interval(self.low, self.high, self.low_inclusive, self.high_inclusive)
        return f"an integer in {text}" if self.integer else text

    def checked(self, key: str, value, num_classes: int | None = None):
        if self.check is not None:
            return self.check(f"loss.{key}", value, num_classes)
        if self.choices:
            return check_choice(f"loss.{key}", value, self.choices)
        return check_number(f"loss.{key}", value, self.low, self.high, self.low_inclusive, self.high_inclusive,
                            self.integer)


def flag(default: bool, help: str, source: str = "") -> Knob:
    return Knob(default, help, source, choices=(True, False))
