"""Polling with short intervals (tenacity), for every wait on a lab: readiness, failover,
agreement. A condition that raises counts as not yet true only if it says so itself."""

from __future__ import annotations

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

POLL_INTERVAL_S = 0.05


def wait_until(condition, timeout_s: float, interval_s: float = POLL_INTERVAL_S) -> bool:
    """Poll `condition()` every `interval_s` until it is true; False after `timeout_s`."""
    retrying = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(interval_s),
                        retry=retry_if_result(lambda ok: not ok))
    try:
        return bool(retrying(condition))
    except RetryError:
        return False


def first_value(ask, timeout_s: float, interval_s: float = POLL_INTERVAL_S):
    """Poll `ask()` every `interval_s` until it returns something other than None, and return
    that; None after `timeout_s`."""
    retrying = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(interval_s),
                        retry=retry_if_result(lambda value: value is None))
    try:
        return retrying(ask)
    except RetryError:
        return None
