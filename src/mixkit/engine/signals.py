"""Clean stops: SIGTERM / SIGINT finish the current step, save a resumable checkpoint, exit.

The handler only sets a flag (no work in signal context); the engine looks at the flag after
every step — a Python attribute read, no device sync — and then saves and raises
:class:`Interrupted`, which the CLI turns into exit code 143 (SIGTERM) or 130 (SIGINT). A second
Ctrl-C while the checkpoint is being written interrupts at once (the previous checkpoint stays
whole: writes are atomic).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class Interrupted(Exception):
    """Training stopped by a signal after saving a resumable checkpoint."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 128 + int(signum))


class StopFlag:
    """Set by the signal handler (or a test), read by the engine after each step."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum

    def clear(self) -> None:
        self.signum = None

    def __bool__(self) -> bool:
        return self.signum is not None


STOP = StopFlag()


def _handler(signum: int, frame) -> None:
    if STOP and signum == signal.SIGINT:
        raise KeyboardInterrupt          # second Ctrl-C: stop now
    STOP.request(signum)


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Install the handlers for the duration of a run (main thread only), then restore them."""
    STOP.clear()
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    previous = {s: signal.signal(s, _handler) for s in EXIT_CODES}
    try:
        yield STOP
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        STOP.clear()
