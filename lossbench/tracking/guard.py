"""The trackers of a training run, each behind a guard: a tracker that fails
(an unreachable server, a store that went away, a bug in a library) is
named in one warning and left out for the rest of the run, which trains on
and writes its files as it would without it."""

import logging

from lossbench import errors

log = logging.getLogger("lossbench")


def one_line(error: BaseException, limit: int = 300) -> str:
    """The error's type and message, on one line."""
    return f"{type(error).__name__}: {errors.one_line(error, limit) or type(error).__name__}"


class Trackers:
    """Calls every live tracker in turn; the first exception of one turns it off."""

    def __init__(self, trackers=()):
        self.active = list(trackers)

    def __bool__(self) -> bool:
        return bool(self.active)

    def _each(self, method: str, *args) -> None:
        for tracker in list(self.active):
            try:
                getattr(tracker, method)(*args)
            except Exception as e:  # noqa: BLE001 - whatever a tracker raises must not end the run
                self.drop(tracker, e)

    def drop(self, tracker, error: Exception) -> None:
        self.active.remove(tracker)
        log.warning("%s logging failed and is off for the rest of this run (training goes on): %s",
                    tracker.name, one_line(error))
        try:
            tracker.abandon()
        except Exception:  # noqa: BLE001 - it failed already: its clean-up may too
            pass

    def start(self, run, earlier_rows: list[dict]) -> "Trackers":
        self._each("start", run, earlier_rows)
        return self

    def log_epoch(self, row: dict) -> None:
        if self.active:
            self._each("log_epoch", row)

    def finish(self, summary: dict) -> None:
        if self.active:
            self._each("finish", summary)
