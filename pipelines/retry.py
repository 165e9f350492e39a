"""Retry a call with exponential backoff until it succeeds or a stop event is set."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Callable, TypeVar

logger = logging.getLogger(__name__)

RETRY_BACKOFF_INITIAL = timedelta(milliseconds=100)
RETRY_BACKOFF_MAX = timedelta(seconds=10)

T = TypeVar("T")


class WriterStopped(Exception):
    """The stop event was set while a call was being retried."""


def retry_until_stopped(
    action: Callable[[], T],
    description: str,
    retryable: type[BaseException] | tuple[type[BaseException], ...],
    stop_event: threading.Event,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Call ``action`` until it returns, backing off after each ``retryable`` error.

    The wait doubles from ``RETRY_BACKOFF_INITIAL`` up to ``RETRY_BACKOFF_MAX``.
    Each failure is logged with ``description`` (e.g. "writing 12 rows to
    session_features") and reported to ``on_retry``. Other errors propagate.
    Raises :class:`WriterStopped` once ``stop_event`` is set during the waits.
    """
    backoff = RETRY_BACKOFF_INITIAL
    attempt = 1
    while True:
        try:
            return action()
        except retryable as error:
            if on_retry is not None:
                on_retry()
            logger.warning(
                "%s failed (attempt %d): %s: %s, retrying in %.1f s",
                description, attempt, type(error).__name__, error, backoff.total_seconds(),
            )
        if stop_event.wait(backoff.total_seconds()):
            raise WriterStopped(description)
        backoff = min(backoff * 2, RETRY_BACKOFF_MAX)
        attempt += 1
