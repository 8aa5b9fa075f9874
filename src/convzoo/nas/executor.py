"""Where a search's children train: in this process, in local worker processes, or on a Ray cluster.

    with make_executor("local", workers=2) as executor:
        futures = [executor.submit(train_child, job) for job in jobs]   # concurrent.futures.Future each

An executor runs picklable top-level functions and hands back standard futures, so the search waits on them
with `concurrent.futures.wait`/`as_completed` whatever runs them.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
from typing import Any, Callable

from ..errors import ConvzooError

EXECUTORS = ("local", "ray")


class ExecutorError(ConvzooError, ValueError):
    """An executor that cannot be used as asked: unknown name, bad worker count, Ray not installed."""


class Executor:
    """Runs functions, returns futures. Use as a context manager, or call close()."""

    workers: int = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class SerialExecutor(Executor):
    """Runs each function at once, in this process; the future it returns is already done (an exception is
    kept in the future, as a pool would keep it)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:  # noqa: BLE001 (handed to the caller through the future)
            future.set_exception(err)
        return future


def _init_worker(threads: int) -> None:
    import torch

    # Workers share the machine's cores: one thread each keeps N workers from fighting over N cores.
    torch.set_num_threads(threads)


class ProcessExecutor(Executor):
    """`workers` local processes (spawned, not forked: a forked copy of a process that already ran torch's
    thread pools can deadlock), each with `threads` CPU threads."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        if workers < 1:
            raise ExecutorError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
            initargs=(threads,))

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        # Children not started yet are dropped (an interrupted search re-runs them on --resume).
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(Executor):
    """Children as Ray tasks of `threads` CPUs each: on this machine, or on the cluster at `address` (or the one
    RAY_ADDRESS names). Ray runs as many at once as the cluster's CPUs allow; `workers` is what the search
    reports (None: the cluster's CPU count)."""

    def __init__(self, workers: int | None = None, threads: int = 1, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as err:
            raise ExecutorError("--executor ray needs Ray, which is not installed: `pip install ray` (or use "
                                "--executor local)") from err
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
        self.threads = threads
        self._running: list = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        remote = self._ray.remote(num_cpus=self.threads)(_run_with_threads)
        return remote.remote(self.threads, fn, *args).future()

    def close(self) -> None:
        pass  # the Ray runtime belongs to the session (ray.shutdown() ends it)


def _run_with_threads(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    _init_worker(threads)
    return fn(*args)


def make_executor(name: str = "local", workers: int = 1, threads: int = 1) -> Executor:
    """"local": this process when workers is 1, else `workers` processes; "ray": Ray tasks."""
    if name not in EXECUTORS:
        raise ExecutorError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ExecutorError(f"workers must be at least 1, got {workers}")
    if name == "ray":
        return RayExecutor(workers, threads)
    return SerialExecutor() if workers == 1 else ProcessExecutor(workers, threads)
