"""The diagnosis of a run: one label, the evidence for it, and advice that
follows from that evidence.

The judged window is the last quarter of the epochs (at least ``MIN_WINDOW``).
The held-out curves are the test set's: the largest held-out split, and the
one the report plots. Nothing is selected here; the selected epoch is only
named. The rules, in the order they are tried:

- ``diverged``: a loss became non-finite. ``too_early``: fewer than ``MIN_EPOCHS``.
- ``exploding``: the training loss reached ``EXPLODE`` times where it started
  (the first epoch's loss or the chance-level loss ln K, whichever is higher), or
  the gradient norm grew ``EXPLODE`` times its first epoch's mean.
- ``not_learning``: train and test accuracy never clearly left chance (1/K
  balanced on test; the majority class's share on the training set). The advice
  follows the update-to-weight ratio: raise a learning rate that barely moves
  the weights, lower one that throws them about, otherwise look at the data.
- ``unstable``: from one epoch to the next, test accuracy typically jumps by
  more than ``ACC_SWING`` and twice its sampling noise, or the test NLL by more
  than a factor of 1.4 (beyond their steady trends); or the accuracy fell from
  its best by more than its noise, with spikes of the training loss after the
  best epoch.
- from the trends of the training loss (measured above the loss's floor: a
  smoothed target cannot be fitted to zero) and of the test loss:

  | train | test | label |
  |---|---|---|
  | rising | any | ``bad_setup`` |
  | falling | falling, or accuracy rising | ``still_learning`` |
  | falling or fitted | rising, accuracy fell | ``overfitting_diverging`` |
  | falling or fitted | rising, accuracy holds | ``overconfident`` |
  | falling or fitted | flat, large gap | ``overfitting`` |
  | fitted, or flat with the schedule annealed | flat, accuracy at its best | ``converged`` |

  A run whose schedule has annealed (the learning rate below ``ANNEALED`` of its
  peak) with the test accuracy at its best and not rising counts both losses as
  flat: whatever they still creep down by at that learning rate changes nothing.
  | flat | falling | ``data_problem`` |
  | flat | flat | ``stuck`` (``oscillating`` when it swings) |

  "Fitted": the training loss has fallen to within ``FITTED`` of its first
  value's height above the floor. "Large gap": train accuracy above test
  accuracy by more than ``GAP`` plus the noise of the test accuracy. Without
  accuracy columns, a falling training loss with a flat test loss is
  overfitting and a fitted one converged.

On long-tailed data a finding is added where the tail classes' accuracy falls
from its best while the head's rises.
"""

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from lossbench.diagnosis.evidence import Curves, RunFacts
from lossbench.diagnosis.trends import NOISE_MULTIPLE, Trend, plateau_onset, robust_spread, smooth, theil_sen, trend

MIN_EPOCHS = 10
MIN_WINDOW = 6
WINDOW_FRACTION = 0.25
SWING = 0.10  # robust spread / level above which a flat curve oscillates
SCALE_FLOOR = 0.05  # changes are measured against at least this fraction of the first epoch's loss
FITTED = 0.02  # a training loss this close to its floor (as a fraction of where it started) has fitted the data
EXPLODE = 100.0  # loss or gradient norm this many times its start
NEAR_CHANCE = 0.10  # accuracy within this fraction of the way from chance to perfect
TINY_UPDATE = 1e-4  # weights moving less than this fraction of their norm per epoch barely move
HUGE_UPDATE = 1.0  # ... more than their own norm per epoch are thrown about
ANNEALED = 0.05  # a final learning rate below this fraction of its peak has annealed
RISE = 0.10  # a test NLL this far above its minimum has risen
GAP = 0.05  # train minus test accuracy beyond the noise that counts as a large gap
ACC_SWING = 0.02  # test accuracy jumping more than this (and 2 standard errors) between epochs is unstable
NLL_SWING = math.log(1.4)  # ... or the test NLL by more than this factor
SPIKE = 2.0  # an epoch's training loss this many times the median of the 3 before it
MIN_ACC_NOISE = 0.005

ADVICE = {
    "still_learning": "The held-out curves still improve: keep training (more epochs, or a longer schedule).",
    "converged": "Test accuracy is at its best within noise, with the curves levelled off or the learning rate "
    "annealed to near zero: more epochs will not help. To do better, change the recipe (model, loss, augmentation, "
    "schedule), not the length.",
    "overfitting": "The model fits the training set far better than the test set: regularise (weight decay, "
    "augmentation, label smoothing), use more data or a smaller model, or stop at the selected epoch.",
    "overfitting_diverging": "The test loss rises and the test accuracy has fallen from its best: the model is "
    "memorising the training set. Report the selected epoch, stop earlier, or regularise.",
    "overconfident": "The test NLL rises while the accuracy holds: predictions grow more confident without growing "
    "more right, so calibration worsens. Use label smoothing, temperature scaling, or stop earlier.",
    "data_problem": "The training loss is flat while the test loss falls: check for a data problem "
    "(leakage between train and test, or a broken split).",
    "stuck": "Both losses are flat well above the training loss's floor with the learning rate still high: "
    "lower the learning rate or let the schedule anneal it.",
    "oscillating": "The losses swing without a trend at a high learning rate: lower the learning rate or raise "
    "the batch size.",
    "bad_setup": "The training loss rises: check the learning rate and schedule, the architecture and the data.",
    "diverged": "A loss became non-finite: lower the learning rate, and check the data and the loss's settings.",
    "exploding": "The loss blew up by orders of magnitude: lower the learning rate, warm up "
    "(sched.warmup_epochs), or clip the gradient norm (trainer.clip_grad_norm).",
    "unstable": "Test accuracy jumps about, or fell from its best after spikes of the training loss: lower the "
    "learning rate, warm up, or clip the gradient norm (trainer.clip_grad_norm); report the selected epoch.",
    "not_learning": "Accuracy stays at chance: check the labels, the data and the initialisation.",
    "too_early": f"Fewer than {MIN_EPOCHS} epochs: too early to judge; train longer.",
}
NOT_LEARNING_ADVICE = {
    "tiny": "Accuracy stays at chance and the weights barely move: raise the learning rate (by 10-100x).",
    "huge": "Accuracy stays at chance while the weights are thrown about: lower the learning rate (by 10-100x).",
    "test_only": "The model learns the training set but predicts the test set at chance: the test data does not "
    "match the training data (labels, class order or preprocessing).",
}


@dataclass
class Diagnosis:
    label: str
    advice: str
    evidence: list[str] = field(default_factory=list)  # what the label rests on, in words with numbers
    window: tuple[int, int] | None = None  # first and last epoch judged
    onset_epoch: int | None = None  # where the current phase began
    best_epoch: int | None = None  # the best test accuracy's epoch (an oracle: shown, never reported)
    selected_epoch: int | None = None
    findings: list[str] = field(default_factory=list)  # further observations (long-tailed data)

    def _epochs(self) -> str:
        named = [f"phase began at epoch {self.onset_epoch}" if self.onset_epoch is not None else "",
                 f"best test epoch {self.best_epoch}" if self.best_epoch is not None else "",
                 f"selected epoch {self.selected_epoch}" if self.selected_epoch is not None else ""]
        return "; ".join(e for e in named if e)

    def _span(self) -> str:
        return f" (epochs {self.window[0]}-{self.window[1]})" if self.window else ""

    def sentence(self) -> str:
        """All of it on one line."""
        parts = [f"{self.label}: {self.advice}"]
        if self.evidence:
            parts.append(f"Evidence{self._span()}: " + "; ".join(self.evidence) + ".")
        if self._epochs():
            parts.append(self._epochs().capitalize() + ".")
        return " ".join(parts + self.findings)

    def explained(self) -> str:
        """All of it as a block of lines to print: label, advice, one line per piece of evidence."""
        lines = [self.label, f"  {self.advice}"]
        if self.evidence:
            lines += [f"  evidence{self._span()}:"] + [f"  - {item}" for item in self.evidence]
        lines += [f"  {finding}" for finding in self.findings]
        if self._epochs():
            lines.append(f"  {self._epochs()}")
        return "\n".join(lines)

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict | None) -> "Diagnosis | None":
        """A diagnosis as summary.json holds it; None if written in another form."""
        if not record or set(record) != {f.name for f in fields(cls)}:
            return None
        return cls(**{**record, "window": tuple(record["window"]) if record["window"] else None})


def _number(x: float) -> str:
    return f"{x:.3g}"


def _trend_words(name: str, t: Trend, floor: float = 0.0) -> str:
    above = f", {_number(floor)} being its floor" if floor else ""
    within = ", within noise" if t.direction == "flat" else ""
    return f"{name} {t.direction} at {_number(t.level + floor)} (slope {t.slope:+.2g}/epoch{within}{above})"


def _swing(epochs: np.ndarray, values: np.ndarray) -> float:
    """How far a curve typically jumps from one epoch to the next beyond its steady
    trend: the median distance of its per-epoch changes from the Theil-Sen slope."""
    if len(values) < 2:
        return 0.0
    slope, _ = theil_sen(epochs, values)
    return float(np.median(np.abs(np.diff(values) / np.diff(epochs) - slope)))


def _spikes(losses: np.ndarray, scale: float) -> list[int]:
    """Indices of epochs whose loss jumped ``SPIKE`` times above the median of the 3 before."""
    return [i for i in range(3, len(losses))
            if losses[i] > SPIKE * np.median(losses[i - 3:i]) and losses[i] - np.median(losses[i - 3:i]) > scale]


class Judgement:
    """The signals of one run, computed once, and the rules that read them."""

    def __init__(self, curves: Curves, facts: RunFacts):
        self.curves, self.facts = curves, facts
        self.advice = None  # where the evidence calls for other advice than the label's own
        epochs = curves.epochs
        n = len(epochs)
        self.size = min(n, max(MIN_WINDOW, math.ceil(WINDOW_FRACTION * n)))
        self.x = epochs[-self.size:]
        self.window = (int(self.x[0]), int(self.x[-1]))
        self.floor = facts.loss_floor
        self.train = curves["train_loss"] - self.floor
        self.test = curves["test_loss"]
        self.train_trend = trend(self.x, self.train[-self.size:], SCALE_FLOOR * abs(self.train[0]))
        self.test_trend = trend(self.x, self.test[-self.size:], SCALE_FLOOR * abs(self.test[0]))
        self.fitted = np.median(self.train[-self.size:]) <= FITTED * abs(self.train[0])
        self.evidence = [_trend_words("train loss", self.train_trend, self.floor), _trend_words("test loss", self.test_trend)]
        self._accuracy()
        self._gap()
        self._schedule()

    def _tail(self, values: np.ndarray) -> float:
        """The end of a curve: the median of its last 3 epochs."""
        return float(np.median(values[-3:]))

    def _accuracy(self) -> None:
        self.acc_name, acc = self.curves.held_out_accuracy()
        self.acc = acc
        if acc is None:
            return
        best = int(np.argmax(acc))
        self.acc_end, self.acc_best, self.acc_best_epoch = self._tail(acc), float(acc[best]), int(self.curves.epochs[best])
        # the standard error of an accuracy measured on the test set's images
        self.acc_sampling = math.sqrt(self.acc_end * (1 - self.acc_end) / self.facts.test_size) if self.facts.test_size else 0.0
        self.acc_noise = max(2 * self.acc_sampling, NOISE_MULTIPLE * robust_spread(acc[-self.size:]), MIN_ACC_NOISE)
        self.at_best = self.acc_end >= self.acc_best - self.acc_noise
        self.acc_trend = trend(self.x, acc[-self.size:])
        words = self.acc_name.replace("_acc", " accuracy").replace("_", " ")
        self.evidence.append(f"{words} {self.acc_end:.3f} at the end, best {self.acc_best:.3f} at epoch "
                             f"{self.acc_best_epoch} (noise ±{self.acc_noise:.3f})")

    def _gap(self) -> None:
        train_acc, test_acc = self.curves["train_acc"], self.curves["test_acc"]
        self.gap = None
        if train_acc is None or test_acc is None:
            return
        self.gap = self._tail(train_acc) - self._tail(test_acc)
        self.large_gap = self.gap > GAP + self.acc_noise
        ratio = self._tail(self.test) / max(self._tail(self.curves["train_loss"]), 1e-12)
        self.evidence.append(f"train accuracy {self._tail(train_acc):.3f} against test {self._tail(test_acc):.3f}: "
                             f"a gap of {100 * self.gap:.1f} points; test loss {ratio:.3g}x the training loss")

    def _schedule(self) -> None:
        lr = self.curves["lr"]
        self.annealed = False
        if lr is None:
            return
        peak, end = float(np.nanmax(lr)), float(lr[-1])
        self.annealed = peak > 0 and end <= ANNEALED * peak
        self.evidence.append(f"learning rate {_number(end)} at the end, {100 * end / peak:.3g}% of its peak {_number(peak)}"
                             if peak > 0 else "learning rate 0")

    # The rules, tried in order: each returns (label, onset epoch) or None.

    def exploding(self):
        train = self.curves["train_loss"]
        start = max(float(train[0]), self.facts.chance_loss or 0.0)
        peak = int(np.argmax(train))
        reasons = []
        if train[peak] >= EXPLODE * start:
            reasons.append(f"the training loss reached {_number(train[peak])} at epoch {int(self.curves.epochs[peak])}, "
                           f"{_number(train[peak] / start)}x where it started ({_number(start)})")
        grads = self.curves["grad_norm_max"]
        first = self.curves["grad_norm_mean"]
        if grads is not None and first is not None and first[0] > 0:
            top = int(np.nanargmax(grads))
            if grads[top] >= EXPLODE * first[0]:
                reasons.append(f"the gradient norm reached {_number(grads[top])} at epoch {int(self.curves.epochs[top])}, "
                               f"{_number(grads[top] / first[0])}x its first epoch's mean")
        if not reasons:
            return None
        self.evidence = reasons + self.evidence
        over = np.flatnonzero(train >= EXPLODE * start)
        return "exploding", int(self.curves.epochs[over[0]] if len(over) else self.curves.epochs[peak])

    def not_learning(self):
        chance, majority = self.facts.chance_accuracy, self.facts.majority_share
        train_acc = self.curves["train_acc"]
        if self.acc is None or chance is None or train_acc is None:
            return None
        test_best = float(np.max(smooth(self.acc, 3)))
        train_best = float(np.max(smooth(train_acc, 3)))
        test_near = test_best <= chance + NEAR_CHANCE * (1 - chance)
        train_near = train_best <= majority + NEAR_CHANCE * (1 - majority)
        if not test_near:
            return None
        self.evidence.insert(0, f"test accuracy never above {test_best:.3f} (chance {chance:.3f}), train accuracy never "
                                f"above {train_best:.3f} (the majority class's share {majority:.3f})")
        if not train_near:
            self.advice = NOT_LEARNING_ADVICE["test_only"]
            return "data_problem", int(self.curves.epochs[0])
        updates = self.curves["update_ratio"]
        if updates is not None:
            typical = float(np.nanmedian(updates))
            self.evidence.insert(1, f"the weights moved {typical:.2g} of their norm per epoch (median)")
            if typical < TINY_UPDATE:
                self.advice = NOT_LEARNING_ADVICE["tiny"]
            elif typical > HUGE_UPDATE:
                self.advice = NOT_LEARNING_ADVICE["huge"]
        return "not_learning", int(self.curves.epochs[0])

    def unstable(self):
        if self.acc is None:
            return None
        acc_swing = _swing(self.x, self.acc[-self.size:])
        nll = self.curves["test_nll"] if self.curves["test_nll"] is not None else self.test
        nll_swing = _swing(self.x, np.log(np.maximum(nll[-self.size:], 1e-12)))
        if acc_swing > max(ACC_SWING, 2 * self.acc_sampling) or nll_swing > NLL_SWING:
            self.evidence.insert(0, f"from one epoch to the next, test accuracy jumps by {acc_swing:.3f} (the test set's "
                                    f"sampling noise: {self.acc_sampling:.3f}) and the test NLL by a factor of "
                                    f"{math.exp(nll_swing):.2f}, typically")
            return "unstable", self.window[0]
        if self.at_best:
            return None
        after = set(np.flatnonzero(self.curves.epochs > self.acc_best_epoch))
        spikes = [i for i in _spikes(self.curves["train_loss"], SCALE_FLOOR * abs(self.train[0])) if i in after]
        if not spikes:
            return None
        self.evidence.insert(0, f"the training loss spiked at epoch{'s' if len(spikes) > 1 else ''} "
                                f"{', '.join(str(int(self.curves.epochs[i])) for i in spikes[:5])}; test accuracy fell "
                                f"{100 * (self.acc_best - self.acc_end):.1f} points from its best")
        return "unstable", int(self.curves.epochs[spikes[0]])

    def _rises(self) -> bool:
        """The test loss rises over the window, or the test NLL has risen from its
        minimum by ``RISE`` of it, by more than its noise and by 5% of its first value."""
        nll = self.curves["test_nll"] if self.curves["test_nll"] is not None else self.test
        smoothed = smooth(nll)
        lowest = float(np.min(smoothed))
        rise = self._tail(nll) - lowest
        self.nll_minimum = int(self.curves.epochs[int(np.argmin(smoothed))])
        return self.test_trend.direction == "rising" or rise > max(RISE * lowest, SCALE_FLOOR * abs(nll[0]),
                                                                    NOISE_MULTIPLE * self.test_trend.noise)

    def by_trends(self):
        train, test, epochs = self.train_trend.direction, self.test_trend.direction, self.curves.epochs
        improving = self.acc is not None and self.acc_trend.direction == "rising"
        if self.annealed and self.acc is not None and self.at_best and not improving:
            # the schedule has ended with the accuracy at its best: what the losses
            # still creep down by at a learning rate near zero changes nothing
            train, test = ("flat" if t == "falling" else t for t in (train, test))
        if train == "rising" and not self.fitted:
            return "bad_setup", int(epochs[int(np.argmin(smooth(self.train)))])
        if train == "falling" and not self.fitted and (test == "falling" or improving):
            return "still_learning", int(epochs[0])
        if (train == "falling" or self.fitted) and test == "falling":
            return "still_learning", int(epochs[0])
        if self._rises() and (train == "falling" or self.fitted or test == "rising"):
            if self.acc is not None and self.at_best:
                return "overconfident", self.nll_minimum
            return "overfitting_diverging", self.nll_minimum
        onset = plateau_onset(epochs, self.test, self.size)
        if self.gap is not None and self.large_gap and (train == "falling" or self.fitted or self.annealed):
            return "overfitting", onset
        if self.acc is None and train == "falling":
            return "overfitting", onset
        if test == "falling":
            return "data_problem", plateau_onset(epochs, self.train, self.size)
        if train == "falling" or self.fitted or self.annealed:
            if self.acc is None or self.at_best:
                return "converged", onset
            return "overfitting", onset
        swinging = max(self.train_trend.noise / self.train_trend.scale, self.test_trend.noise / self.test_trend.scale) > SWING
        label = "oscillating" if swinging else "stuck"
        # a swinging curve needs a wider median before its plateau shows
        return label, plateau_onset(epochs, self.train, self.size, smoothing=11 if swinging else 5)

    def long_tail_finding(self) -> list[str]:
        head, tail = self.curves["test_head_acc"], self.curves["test_tail_acc"]
        if head is None or tail is None:
            return []
        smoothed_tail, smoothed_head = smooth(tail, 3), smooth(head, 3)
        best = int(np.argmax(smoothed_tail))
        fall = smoothed_tail[best] - self._tail(tail)
        rise = self._tail(head) - smoothed_head[best]
        if fall <= max(GAP, getattr(self, "acc_noise", 0.0)) or rise <= 0:
            return []
        return [f"Long tail: the tail classes' test accuracy fell from {smoothed_tail[best]:.3f} (epoch "
                f"{int(self.curves.epochs[best])}) to {self._tail(tail):.3f} while the head's rose from "
                f"{smoothed_head[best]:.3f} to {self._tail(head):.3f}: the model trades the tail for the head. A "
                f"re-balancing loss (balanced_softmax, logit_adjustment, ldam with trainer.drw_epoch) or "
                f"trainer.sampler=class_balanced counters it."]


def diagnose(metrics, facts: RunFacts | None = None) -> Diagnosis:
    """The diagnosis of a run from its metrics (metrics.csv's columns, or rows of it)."""
    facts = facts or RunFacts()
    curves = Curves(metrics)
    selected = facts.selected_epoch
    train_loss, test_loss = curves.recorded("train_loss"), curves.recorded("test_loss")
    if not len(curves) or train_loss is None or test_loss is None:
        return Diagnosis("too_early", ADVICE["too_early"], selected_epoch=selected)
    _, acc = curves.held_out_accuracy()
    best = None
    if acc is not None:
        best = int(curves.epochs[int(np.nanargmax(acc))])
    elif np.isfinite(test_loss).any():
        best = int(curves.epochs[int(np.nanargmin(np.where(np.isfinite(test_loss), test_loss, np.inf)))])
    bad = ~(np.isfinite(train_loss) & np.isfinite(test_loss))
    if bad.any():
        return Diagnosis("diverged", ADVICE["diverged"], [f"a loss is non-finite from epoch {int(curves.epochs[np.argmax(bad)])}"],
                         None, int(curves.epochs[np.argmax(bad)]), best, selected)
    if len(curves) < MIN_EPOCHS:
        return Diagnosis("too_early", ADVICE["too_early"], best_epoch=best, selected_epoch=selected)
    judged = Judgement(curves, facts)
    label, onset = judged.exploding() or judged.not_learning() or judged.unstable() or judged.by_trends()
    return Diagnosis(label, judged.advice or ADVICE[label], judged.evidence, judged.window, onset, best, selected,
                     judged.long_tail_finding())
