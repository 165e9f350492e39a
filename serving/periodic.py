"""A daemon thread that calls a function at a fixed interval until stopped."""

from __future__ import annotations

import logging
import threading
from typing import Callable

logger = logging.getLogger(__name__)


class PeriodicTask:
    """Call ``function`` every ``interval_s`` seconds in a daemon thread named ``name``.

    The function must handle its own expected errors. Anything it raises is
    logged and the task goes on, so a bug in one round does not stop reloads.
    """

    def __init__(self, name: str, interval_s: float, function: Callable[[], None]):
        if interval_s <= 0:
            raise ValueError(f"interval of {name} is {interval_s} s; it must be positive")
        self.name = name
        self.interval_s = interval_s
        self._function = function
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> PeriodicTask:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                self._function()
            except Exception:  # noqa: BLE001 - logged, and the next round retries
                logger.exception("periodic task %s failed; retrying in %s s", self.name, self.interval_s)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval_s + 5)
