"""Ctrl-C (SIGINT), SIGTERM (what SLURM sends when it preempts a job) and
SIGUSR2 (what the slurm launcher has SLURM send before a job's time limit) end
a run cleanly: the handler only raises a flag, which the training loop reads
between steps, so no file is ever left half-written. A second Ctrl-C stops at
once."""

import signal
from contextlib import contextmanager

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGUSR2: 140}


class StopRequest:
    def __init__(self):
        self.signal: int | None = None  # the last signal received
        self.received: set[int] = set()

    def __bool__(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal, 1)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""


@contextmanager
def stop_on_signals():
    request = StopRequest()

    def handle(signum, frame):
        if request and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.signal = signum
        request.received.add(signum)

    try:
        previous = {s: signal.signal(s, handle) for s in EXIT_CODES}
    except ValueError:  # not the main thread (some launchers): signals stay as they are
        yield request
        return
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
