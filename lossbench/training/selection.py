"""Which epoch a run reports. ``selected``: the epoch of the best
``trainer.select_metric``, a validation number unless the user names a test
one; without a validation split, the last epoch. ``oracle``: the epoch of best
test accuracy, optimistic (chosen on the data it is measured on), kept for
comparison with papers that report it and shown only where asked for."""

import math
from dataclasses import dataclass

from lossbench.errors import UserError
from lossbench.training.columns import METRIC_COLUMNS

SELECTABLE = tuple(c for c in METRIC_COLUMNS if c.startswith(("val_", "test_")))
LOWER_IS_BETTER = ("_loss", "_nll", "_ece")
ORACLE_METRIC = "test_acc"
# A small validation split saturates an accuracy (every image right from some
# epoch on): the first epoch to reach it would be chosen, long before the
# model stops improving. Ties go to the lower NLL on the same split.


@dataclass(frozen=True)
class Selection:
    metric: str | None  # None: the last epoch
    by: str  # how, in words, for the summary and the report

    @property
    def tie_break(self) -> str | None:
        if self.metric is None or self.metric.endswith(LOWER_IS_BETTER):
            return None
        return self.metric.split("_", 1)[0] + "_nll"

    def key(self, row: dict) -> tuple | None:
        """What the selection maximises for an epoch's metrics row; None where it cannot be judged."""
        if self.metric is None:
            return (row.get("epoch", 0),)  # the last epoch
        value = row.get(self.metric)
        if value is None or not math.isfinite(value):
            return None
        if self.tie_break is None:
            return (-value,) if self.metric.endswith(LOWER_IS_BETTER) else (value,)
        nll = row.get(self.tie_break)
        return (value, -nll if nll is not None and math.isfinite(nll) else -math.inf)

    def improves(self, row: dict, incumbent: tuple | None) -> bool:
        key = self.key(row)
        return key is not None and (incumbent is None or key > tuple(incumbent))

    def record(self) -> dict:
        return {"metric": self.metric, "by": self.by}


def selection_for(select_metric: str, has_validation: bool) -> Selection:
    if select_metric not in SELECTABLE:
        raise UserError(f"trainer.select_metric={select_metric!r} is invalid: valid metrics are {', '.join(SELECTABLE)}")
    if select_metric.startswith("test_"):
        return Selection(select_metric, f"the epoch of {_direction(select_metric)} {select_metric}, on the test set as "
                                        f"asked (optimistic){_ties(select_metric)}")
    if not has_validation:
        return Selection(None, "the last epoch (no validation split: dataset.val_fraction=0)")
    return Selection(select_metric, f"the epoch of {_direction(select_metric)} {select_metric} (validation split"
                                    f"{_ties(select_metric)})")


def _direction(metric: str) -> str:
    return "lowest" if metric.endswith(LOWER_IS_BETTER) else "best"


def _ties(metric: str) -> str:
    tie_break = Selection(metric, "").tie_break
    return f"; ties to the lower {tie_break}" if tie_break else ""
