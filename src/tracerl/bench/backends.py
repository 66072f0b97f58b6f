"""Where runs execute: ``inline`` (this process, one after another), ``process`` (a pool of spawned
worker processes, the default) or ``ray`` (one Ray task per run, on a local instance or a cluster).

Every backend yields run records as runs finish; the caller writes them. Closing the iterator early
(``--fail-fast``, Ctrl-C) cancels the runs not yet started and abandons the ones in flight (they are
not recorded, so they run again when the suite resumes).

Process workers die with the suite: when the process running the suite is killed (even ``kill -9``), every
worker is killed too (:func:`die_with_parent`), and multiprocessing's resource tracker, whose pipe only the
suite and its workers hold, then exits by itself. Nothing is left running.
"""

from __future__ import annotations

import abc
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator, Sequence

from ..errors import ConfigError, TraceRLError
from .execute import base_record, run_one
from .provenance import configure_torch
from .suites import RunSpec

BACKENDS: tuple[str, ...] = ("process", "inline", "ray")
RAY_INSTALL_HINT = "pip install 'tracerl[ray]' (or: pip install 'ray>=2.9')"


def default_workers() -> int:
    """Half the CPUs, at least one (1 on a 2-core machine: the other core stays free)."""
    return max(1, (os.cpu_count() or 2) // 2)


PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: a signal the kernel sends this process when its parent exits."""


def _watch_parent(parent_pid: int, period: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(period)
    os._exit(1)


def die_with_parent(parent_pid: int, period: float = 1.0) -> str:
    """Make the calling (worker) process exit when process ``parent_pid``, its parent, exits.

    On Linux the kernel does it: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (checked against a parent that died
    before the call). Elsewhere, or if ``prctl`` fails, a daemon thread polls the parent every ``period``
    seconds and exits the process once it is gone. Returns ``"prctl"`` or ``"watchdog"``.

    The kernel's notion of "parent" is the thread that started the worker: the suite's workers are started
    by the thread that submits runs, which lives as long as the pool.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before prctl took effect
                    os._exit(1)
                return "prctl"
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent_pid, period), daemon=True,
                     name="tracerl-bench-parent-watch").start()
    return "watchdog"


def _init_worker(parent_pid: int) -> None:
    """Initializer of every process worker: die with the suite's process, one torch thread."""
    die_with_parent(parent_pid)
    configure_torch()


class WorkerDied(TraceRLError):
    """A worker process died without returning (killed, out of memory, a crash in native code)."""


class Backend(abc.ABC):
    """Runs specs and yields their records in completion order."""

    @abc.abstractmethod
    def run(self, specs: Sequence[RunSpec], verbose: bool = False) -> Iterator[dict[str, Any]]:
        """Yield one record per spec as it finishes."""


class InlineBackend(Backend):
    """Every run in this process, in order (for debugging and tiny suites)."""

    def run(self, specs: Sequence[RunSpec], verbose: bool = False) -> Iterator[dict[str, Any]]:
        for spec in specs:
            yield run_one(spec, verbose)


class ProcessBackend(Backend):
    """A pool of ``workers`` spawned processes, each with one torch thread, each dying with this process."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers = {workers!r} is invalid: must be an integer >= 1")

    def run(self, specs: Sequence[RunSpec], verbose: bool = False) -> Iterator[dict[str, Any]]:
        if not specs:
            return
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(specs)),
                                   mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                                   initargs=(os.getpid(),))
        pending: dict[Future[dict[str, Any]], RunSpec] = {pool.submit(run_one, s, verbose): s for s in specs}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    spec = pending.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool as exc:
                        raise WorkerDied(f"a worker process died while running {spec.run_id} (or a run beside it); "
                                         "finished runs are saved: run the suite again to resume") from exc
        except BaseException:  # stopped early (--fail-fast, Ctrl-C, an error): abandon runs in flight
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


class RayBackend(Backend):
    """One Ray task (``num_cpus=1``) per run, on the cluster at ``address`` or a new local instance with
    ``workers`` CPUs. Ray is an optional dependency; a cluster's nodes need tracerl (and the agents'
    libraries) installed, since each task imports :func:`~tracerl.bench.execute.run_one` there."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"--backend ray needs Ray, which is not installed: {RAY_INSTALL_HINT}") from exc
        self.address = address
        self.workers = default_workers() if workers is None else workers

    def run(self, specs: Sequence[RunSpec], verbose: bool = False) -> Iterator[dict[str, Any]]:
        import ray

        if not specs:
            return
        started = False
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=verbose)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=verbose)
            started = True
        remote = ray.remote(num_cpus=1, max_retries=0)(run_one)
        pending = {remote.remote(s, verbose): s for s in specs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    spec = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the task's process died
                        record = base_record(spec)
                        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=str(exc))
                        yield record
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def make_backend(name: str, workers: int | None = None, ray_address: str | None = None) -> Backend:
    """The backend called ``name`` (:data:`BACKENDS`); an unknown name lists the valid ones."""
    if name == "process":
        return ProcessBackend(workers)
    if name == "inline":
        return InlineBackend()
    if name == "ray":
        return RayBackend(ray_address, workers)
    raise ConfigError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
