"""The retry policy of the exchange's tasks: the error catalogue decides (:mod:`schemas.errors`).

A refusal a retry can help (a system or library down, a busy edge, a race for the chain) is raised
for Airflow to retry with backoff; everything else — bad input, bad signatures, bad config — fails the
task at once. An unexpected exception is left to Airflow's retries (``RUN_FAILED`` is retryable).
"""

from __future__ import annotations

from typing import NoReturn

from airflow.sdk.exceptions import AirflowFailException

from schemas.errors import TongbanError

__all__ = ["RetryableError", "fail_or_retry"]


class RetryableError(RuntimeError):
    """A coded failure Airflow should retry."""


def fail_or_retry(exc: BaseException) -> NoReturn:
    """Re-raise ``exc`` the way Airflow should treat it."""
    if isinstance(exc, TongbanError):
        message = f"{exc.code}: {exc.message_en}" + (f" ({exc.where})" if exc.where else "")
        if exc.retryable:
            raise RetryableError(message) from None
        raise AirflowFailException(message) from None
    raise exc
