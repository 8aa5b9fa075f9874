"""Shared by the property tests: a per-example time limit (a hang fails the example, it never blocks CI) and the
hypothesis settings every property test uses: a fixed example budget, derandomized so CI is repeatable."""
from __future__ import annotations

import contextlib
import signal

from hypothesis import HealthCheck, settings

# derandomize: the same examples every run; deadline=None: the shared machine's load would make timing
# flaky, the per-example alarm below catches a real hang instead.
FUZZ = dict(derandomize=True, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                   HealthCheck.data_too_large])


class TookTooLong(BaseException):
    """Not an Exception: the command line's error boundary must not turn a hang into an exit code."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise TookTooLong(f"over {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fuzz_settings(examples: int):
    return settings(max_examples=examples, **FUZZ)
