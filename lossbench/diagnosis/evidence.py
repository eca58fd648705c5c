"""What the diagnosis reads: a run's per-epoch curves, and the facts about the
run that give them a scale (the chance level, the loss's floor, the size of the
test set)."""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class RunFacts:
    """What the diagnosis knows about a run besides its curves; any may be unknown."""

    num_classes: int | None = None
    train_counts: list[int] | None = None
    test_size: int | None = None
    loss_floor: float = 0.0  # the least the training objective can be (label smoothing's is well above 0)
    selected_epoch: int | None = None
    selected_by: str | None = None  # the metric it was selected by

    @classmethod
    def from_summary(cls, summary: dict) -> "RunFacts":
        counts = summary.get("class_counts")
        test_counts = summary.get("test_counts")
        return cls(
            num_classes=len(counts) if counts else None,
            train_counts=counts,
            test_size=sum(test_counts) if test_counts else None,
            loss_floor=float(summary.get("loss_floor") or 0.0),
            selected_epoch=summary.get("selected_epoch"),
            selected_by=(summary.get("selection") or {}).get("metric"),
        )

    @property
    def chance_accuracy(self) -> float | None:
        """Balanced accuracy of a constant prediction: 1/K."""
        return 1.0 / self.num_classes if self.num_classes else None

    @property
    def majority_share(self) -> float | None:
        """Training accuracy of always predicting the most frequent class."""
        return max(self.train_counts) / sum(self.train_counts) if self.train_counts else self.chance_accuracy

    @property
    def chance_loss(self) -> float | None:
        """Cross entropy of a uniform prediction: ln K."""
        return math.log(self.num_classes) if self.num_classes and self.num_classes > 1 else None


class Curves:
    """The run's metrics.csv columns as float arrays; a column the run lacks
    (or never filled) reads as None."""

    def __init__(self, metrics):
        self.frame = pd.DataFrame(metrics).reset_index(drop=True)
        self.epochs = self.frame["epoch"].to_numpy(dtype=float) if "epoch" in self.frame else np.array([])

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, column: str) -> np.ndarray | None:
        values = self.recorded(column)
        return values if values is not None and np.isfinite(values).any() else None

    def recorded(self, column: str) -> np.ndarray | None:
        """The column as written, non-finite values included (None where the run lacks it)."""
        if column not in self.frame:
            return None
        return pd.to_numeric(self.frame[column], errors="coerce").to_numpy(dtype=float)

    def held_out_accuracy(self) -> tuple[str, np.ndarray] | tuple[None, None]:
        """The accuracy the diagnosis judges: balanced on the test set where it was measured."""
        for column in ("test_balanced_acc", "test_acc"):
            if self[column] is not None:
                return column, self[column]
        return None, None
