"""Where a search's children train: in this process, in local worker processes, or as tasks on a Ray cluster.

    with make_executor("local", workers=2) as executor:
        future = executor.submit(train_child, job)        # a concurrent.futures.Future
        try:
            result = future.result()
        except Exception as err:
            reason = executor.lost(err)                   # "its node died ...": the worker was lost; else a bug

One interface for all three: `submit(fn, *args)` runs a picklable top-level function and hands back a standard
future, so the search waits with `concurrent.futures.wait` whatever runs it. The search, not the executor,
keeps at most `workers` children submitted at once and decides what a lost worker means (it runs the child
again, up to its `retries`); `lost(error)` tells a lost worker (a process that died, a Ray node removed, a
worker killed for memory) from an error the function raised itself. `local_files` says whether the worker sees
this machine's disk: Ray workers may run on other machines, so their children send their files back.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from ..errors import ConvzooError

EXECUTORS = ("local", "ray")

# The environment for a Ray cluster that must stay on this machine's loopback (tests, benchmarks, a laptop): Ray
# otherwise swaps 127.0.0.1 for the machine's network address, and its head node's usage-stats module asks the
# cloud metadata address (169.254.169.254) which cloud it runs on and reports to Ray's server. Set it before
# `import ray` and before any node starts (its processes inherit it); HTTP goes to a closed loopback port.
LOOPBACK_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
    "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1,localhost",
    "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
}


class ExecutorError(ConvzooError, ValueError):
    """An executor that cannot be used as asked: unknown name, bad worker count, Ray not installed."""


class Executor:
    """Runs functions, returns futures. Use as a context manager, or call close()."""

    workers: int = 1          # how many functions the caller should keep submitted at once
    local_files: bool = True  # the function runs where this process's files are

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        raise NotImplementedError

    def lost(self, error: BaseException) -> str | None:
        """Why `error`, raised by a future of this executor, means the worker running the function was lost
        (the function may well succeed on another); None when the function raised it itself."""
        return None

    def describe(self) -> str:
        """One line for the search's log: where the children run."""
        return f"{self.workers} worker(s)"

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class SerialExecutor(Executor):
    """Runs each function at once, in this process; the future it returns is already done (an exception is
    kept in the future, as a pool would keep it). Nothing can be lost but the whole search."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:  # noqa: BLE001 (handed to the caller through the future)
            future.set_exception(err)
        return future

    def describe(self) -> str:
        return "1 worker (this process)"


def _init_worker(threads: int) -> None:
    import torch

    # Workers share the machine's cores: `threads` each keeps N workers from fighting over the cores.
    torch.set_num_threads(threads)


class ProcessExecutor(Executor):
    """`workers` local processes (spawned, not forked: a forked copy of a process that already ran torch's
    thread pools can deadlock), each with `threads` CPU threads. A worker process that dies (killed, out of
    memory) breaks the pool: every function running in it fails with BrokenProcessPool, which `lost` names,
    and the next submit starts a new pool."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        if workers < 1:
            raise ExecutorError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.threads = threads
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
            initargs=(self.threads,))

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        try:
            return self._pool.submit(fn, *args)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args)

    def lost(self, error: BaseException) -> str | None:
        if isinstance(error, BrokenProcessPool):
            return f"a worker process died ({error})"
        return None

    def describe(self) -> str:
        return f"{self.workers} worker process(es) of {self.threads} thread(s)"

    def close(self) -> None:
        # Children not started yet are dropped (an interrupted search re-runs them on --resume).
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(Executor):
    """Each function a Ray task requesting `cpus` CPUs and `gpus` GPUs (Ray places it on a node that has them
    and sets CUDA_VISIBLE_DEVICES to its GPUs), running with int(cpus) torch threads (one at least). Ray itself
    never re-runs a task (max_retries=0): the search does, so it can say so and count. `address`: "auto" (the
    cluster this machine is part of: `ray start`), "HOST:PORT" (its head node), or None (RAY_ADDRESS, else a new
    single-machine Ray instance). A Ray runtime the process already joined is used as it is."""

    local_files = False  # a task may run on another machine

    def __init__(self, workers: int, cpus: float = 1, gpus: float = 0, address: str | None = None) -> None:
        if workers < 1:
            raise ExecutorError(f"workers must be at least 1, got {workers}")
        if not cpus > 0 or not gpus >= 0:
            raise ExecutorError(f"a child needs a positive number of CPUs and no negative number of GPUs, got "
                                f"cpus={cpus}, gpus={gpus}")
        try:
            import ray
        except ImportError as err:
            raise ExecutorError("--executor ray needs Ray, which is not installed: `pip install \"convzoo[ray]\"` "
                                "(or use --executor local)") from err
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except ConnectionError as err:
                raise ExecutorError(f"cannot reach the Ray cluster at {address or 'RAY_ADDRESS'}: {err} (start it "
                                    f"with `ray start --head` on its head node; --address HOST:PORT names it)") from err
        self.workers = workers
        self.cpus, self.gpus = cpus, gpus
        self.options = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": 0}
        self._task = ray.remote(_run_with_threads).options(**self.options)
        self._running: list[tuple[Any, concurrent.futures.Future]] = []  # (ObjectRef, its future)
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        if not any(node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus for node in nodes):
            have = "; ".join(f"{node.get('CPU', 0):g} CPUs, {node.get('GPU', 0):g} GPUs" for node in nodes)
            raise ExecutorError(f"no node of the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs for a child (its "
                                f"nodes: {have}): lower --cpus-per-child/--gpus-per-child, or add nodes")

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        ref = self._task.remote(max(1, int(self.cpus)), fn, *args)
        future = ref.future()
        self._running = [(r, f) for r, f in self._running if not f.done()] + [(ref, future)]
        return future

    def lost(self, error: BaseException) -> str | None:
        exceptions = self._ray.exceptions
        if isinstance(error, exceptions.RayError) and not isinstance(error, exceptions.RayTaskError):
            return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        return None

    def describe(self) -> str:
        total = self._ray.cluster_resources()
        return (f"{self.workers} Ray task(s) at once, {self.cpus:g} CPU and {self.gpus:g} GPU each, on a cluster of "
                f"{len(self._ray.nodes())} node(s) with {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs")

    def close(self) -> None:
        # An interrupted search's children still running are cancelled (--resume runs them again); the Ray
        # runtime itself belongs to the session (ray.shutdown() ends it).
        for ref, future in self._running:
            if not future.done():
                self._ray.cancel(ref, force=True)
        self._running = []


def _run_with_threads(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    _init_worker(threads)
    return fn(*args)


def make_executor(name: str = "local", workers: int = 1, threads: int = 1, *, cpus_per_child: float = 1,
                  gpus_per_child: float = 0, address: str | None = None) -> Executor:
    """"local": this process when workers is 1, else `workers` processes of `threads` threads each; "ray": Ray
    tasks of cpus_per_child CPUs (their threads) and gpus_per_child GPUs on the cluster at `address`."""
    if name not in EXECUTORS:
        raise ExecutorError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ExecutorError(f"workers must be at least 1, got {workers}")
    if name == "ray":
        return RayExecutor(workers, cpus=cpus_per_child, gpus=gpus_per_child, address=address)
    return SerialExecutor() if workers == 1 else ProcessExecutor(workers, threads)
