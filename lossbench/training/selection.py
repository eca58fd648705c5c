"""Which epoch a run reports. ``selected``: the epoch of the best
``trainer.select_metric``, a validation number unless the user names a test
one; without a validation split, the last epoch. ``oracle``: the epoch of best
test accuracy, optimistic (chosen on the data it is measured on), kept for
comparison with papers that report it and shown only where asked for."""

import math
from dataclasses import dataclass

from lossbench.errors import UserError
from lossbench.training.metrics import METRIC_COLUMNS

SELECTABLE = tuple(c for c in METRIC_COLUMNS if c.startswith(("val_", "test_")))
LOWER_IS_BETTER = ("_loss", "_nll", "_ece")
ORACLE_METRIC = "test_acc"


@dataclass(frozen=True)
class Selection:
    metric: str | None  # None: the last epoch
    by: str  # how, in words, for the summary and the report

    @property
    def maximise(self) -> bool:
        return not (self.metric or "").endswith(LOWER_IS_BETTER)

    def improves(self, row: dict, incumbent: float | None) -> bool:
        if self.metric is None:
            return True
        value = row.get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        if incumbent is None:
            return True
        return value > incumbent if self.maximise else value < incumbent

    def record(self) -> dict:
        return {"metric": self.metric, "by": self.by}


def selection_for(select_metric: str, has_validation: bool) -> Selection:
    if select_metric not in SELECTABLE:
        raise UserError(f"trainer.select_metric={select_metric!r} is invalid: valid metrics are {', '.join(SELECTABLE)}")
    if select_metric.startswith("test_"):
        return Selection(select_metric, f"the epoch of {_direction(select_metric)} {select_metric}, on the test set as "
                                        f"asked (optimistic)")
    if not has_validation:
        return Selection(None, "the last epoch (no validation split: dataset.val_fraction=0)")
    return Selection(select_metric, f"the epoch of {_direction(select_metric)} {select_metric} (validation split)")


def _direction(metric: str) -> str:
    return "lowest" if metric.endswith(LOWER_IS_BETTER) else "best"
