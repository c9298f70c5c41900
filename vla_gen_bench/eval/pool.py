"""One pool of worker processes, used by evaluation (``vgb evaluate --workers N``), demonstrations
(``vgb collect-demos``) and RL rollouts.

Each worker is built inside its own spawned process from a picklable ``factory(index)`` and follows
:class:`PoolWorker`: ``setup()`` once (its return value is the worker's ready payload, :attr:`WorkerPool.info`),
``run(task)`` for every task it is given, ``close()`` at the end. The parent gives every worker its own queue and
always knows which task each one holds, so

* :meth:`WorkerPool.map_shards` gives task ``i`` to worker ``i`` and returns the results by worker index (RL: one
  share of the items per worker, the same workers every iteration);
* :meth:`WorkerPool.imap_unordered` gives the next task to whichever worker finished first (evaluation, demos);
* a worker process that dies (killed, segfault, out of memory) is replaced, up to ``restarts`` times per pool, and
  the task it held is sent again to its replacement; with no restarts left the pool raises :class:`PoolError`;
* an exception in a worker comes back as :class:`PoolError` with the worker's traceback;
* a worker whose parent is killed (SIGKILL/SIGTERM, so no clean-up ran) exits within a second instead of running
  its task to the end;
* ``watch`` (a callable returning an exception or None, e.g. a policy process's ``died``) is polled while the
  parent waits: its exception is raised, chained onto a worker's error when both happen.

Tasks, results and ready payloads travel pickled (so a value that cannot be pickled fails loudly in the process that
made it instead of being lost by a queue's feeder thread). This module imports nothing heavy: a spawned child
imports it before anything else.
"""

from __future__ import annotations

import os
import pickle
import queue
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

_END = object()


class PoolWorker(Protocol):
    """What ``factory(index)`` builds inside the worker process."""

    def setup(self) -> Any:
        """Load what the worker needs (env, policy); the return value is the ready payload (picklable)."""

    def run(self, task: Any) -> Any:
        """One task's result (picklable)."""

    def close(self) -> None:
        """Release what ``setup`` made; called in the worker process whatever happened."""


class PoolError(RuntimeError):
    """A worker raised (``trace`` holds its traceback) or died with no restarts left (``exitcode`` is set)."""

    def __init__(self, message: str, trace: str = "", index: int = -1, exitcode: int | None = None):
        super().__init__(message)
        self.trace = trace
        self.index = index
        self.exitcode = exitcode

    def with_trace(self, prefix: str = "") -> PoolError:
        """For an error nobody catches (the traceback Python prints is the parent's): a worker's exception as
        ``prefix`` + its message + its traceback; a death as it is."""
        if not self.trace:
            return self
        return PoolError(f"{prefix}{self.args[0]}\n{self.trace}", self.trace, self.index, self.exitcode)


ORPHAN_POLL_S = 1.0


def _exit_when_orphaned(parent: int, poll_s: float = ORPHAN_POLL_S) -> None:
    """Daemon processes die with a parent that exits normally, not with one that is killed (``kill``, an OOM kill,
    a terminal closed): the worker would run its task (a whole evaluation shard) to the end on a CPU someone else
    now needs. This thread ends the worker once its parent is gone (it is re-parented, so ``getppid`` changes)."""
    while True:
        time.sleep(poll_s)
        if os.getppid() != parent:
            os._exit(3)


def _child_main(factory_blob: bytes, index: int, tasks, results, parent: int) -> None:
    """The worker process: build the worker, set it up, report ready, run tasks until ``None``, close."""
    import threading

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before the factory's modules (numpy, torch) are imported
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="orphan-watch").start()
    worker = None
    tid = None
    try:
        worker = pickle.loads(factory_blob)(index)
        results.put(("ready", index, None, pickle.dumps(worker.setup(), pickle.HIGHEST_PROTOCOL)))
        while (msg := tasks.get()) is not None:
            tid, blob = msg
            out = pickle.dumps(worker.run(pickle.loads(blob)), pickle.HIGHEST_PROTOCOL)
            results.put(("done", index, tid, out))
            tid = None
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent, which decides
        results.put(("error", index, tid, (f"{type(e).__name__}: {e}", traceback.format_exc())))
    finally:
        if worker is not None:
            worker.close()


class WorkerPool:
    """``n`` worker processes (spawn context) built by ``factory(index)``; the constructor returns once every worker
    is set up (:attr:`info` holds their ready payloads by index).

    Args:
        factory: picklable callable ``index -> PoolWorker`` (a class, or ``functools.partial`` of one).
        n: number of worker processes.
        restarts: how many dead worker processes may be replaced over the pool's life (0: the first death raises).
        watch: polled while waiting; an exception it returns is raised (a worker's error is chained to it).
        poll_s: how often the parent checks for dead workers and ``watch`` while no message arrives.
        name: how messages name a worker ("worker 3 died ...", "worker process 3 died ...").
        describe: ``task -> str`` for the restart message ("restarting it and re-running its <describe(task)>").
    """

    def __init__(self, factory: Callable[[int], PoolWorker], n: int, *, restarts: int = 0,
                 watch: Callable[[], BaseException | None] | None = None, poll_s: float = 2.0, name: str = "worker",
                 describe: Callable[[Any], str] | None = None) -> None:  # fmt: skip
        import multiprocessing as mp

        if n < 1:
            raise ValueError(f"a worker pool needs n >= 1 workers, got {n}")
        self.n, self.restarts, self.watch, self.poll_s, self.name = n, restarts, watch, poll_s, name
        self.describe = describe or (lambda task: "task")
        self.restarted = 0
        self._factory = pickle.dumps(factory, pickle.HIGHEST_PROTOCOL)
        self._ctx = mp.get_context("spawn")
        self._results = self._ctx.Queue()
        self._procs: dict[int, Any] = {}
        self._queues: dict[int, Any] = {}
        # worker -> (task id, task, pickled task) of the task it holds
        self._holding: dict[int, tuple[int, Any, bytes] | None] = {}
        self._ready: set[int] = set()
        self._tid = 0
        self._closed = False
        self.info: list[Any] = [None] * n
        try:
            for i in range(n):
                self._start(i)
            while len(self._ready) < n:
                self._next(ready=True)
        except BaseException:
            self.close(now=True)
            raise

    # ------------------------------------------------------------------------------------------ internals
    def _start(self, i: int) -> None:
        self._queues[i] = self._ctx.Queue()
        self._procs[i] = self._ctx.Process(target=_child_main, args=(self._factory, i, self._queues[i],
                                                                      self._results, os.getpid()), daemon=True)  # fmt: skip
        self._procs[i].start()
        self._ready.discard(i)

    def _send(self, i: int, task: Any) -> None:
        self._tid += 1
        held = (self._tid, task, pickle.dumps(task, pickle.HIGHEST_PROTOCOL))
        self._holding[i] = held
        self._queues[i].put((held[0], held[2]))

    def _check(self) -> None:
        """Raise what ``watch`` reports; replace dead workers and send their task to the replacement."""
        if self.watch is not None and (err := self.watch()) is not None:
            raise err
        for i, p in list(self._procs.items()):
            if p.is_alive():
                continue
            if self.restarted >= self.restarts:
                after = f" after {self.restarted} restarts; see the messages above" if self.restarts else ""
                raise PoolError(f"{self.name} process {i} died (exit code {p.exitcode}){after}", index=i,
                                exitcode=p.exitcode)  # fmt: skip
            self.restarted += 1
            held = self._holding.get(i)
            print(f"{self.name} {i} died (exit code {p.exitcode}); restarting it"
                  + (f" and re-running its {self.describe(held[1])}" if held else ""), file=sys.stderr)  # fmt: skip
            self._abandon(self._queues[i])
            self._start(i)
            if held is not None:
                self._queues[i].put((held[0], held[2]))

    def _next(self, ready: bool = False) -> tuple[int, Any]:
        """The next finished task as (worker index, result); ready messages are recorded on the way (``ready``:
        returned, as (worker index, None), too)."""
        while True:
            try:
                kind, i, tid, payload = self._results.get(timeout=self.poll_s)
            except queue.Empty:
                self._check()
                continue
            if kind == "error":
                err = PoolError(payload[0], payload[1], index=i)
                if self.watch is not None and (died := self.watch()) is not None:
                    raise died from err
                raise err
            if kind == "ready":
                self._ready.add(i)
                self.info[i] = pickle.loads(payload)
                if ready:
                    return i, None
                continue
            held = self._holding.get(i)
            if held is None or held[0] != tid:  # a task finished twice (its first worker reported, then died)
                continue
            self._holding[i] = None
            return i, pickle.loads(payload)

    @staticmethod
    def _abandon(q) -> None:
        q.cancel_join_thread()  # nobody reads it any more: never block this process's exit on it
        q.close()

    # ------------------------------------------------------------------------------------------ public
    def map_shards(self, tasks: list) -> list:
        """Task ``i`` to worker ``i`` (exactly one per worker); the results, by worker index."""
        if len(tasks) != self.n:
            raise ValueError(f"map_shards takes one task per worker ({self.n}), got {len(tasks)}")
        for i, task in enumerate(tasks):
            self._send(i, task)
        out: list[Any] = [_END] * self.n
        for _ in range(self.n):
            i, result = self._next()
            out[i] = result
        return out

    def imap_unordered(self, tasks: Iterable) -> Iterator:
        """Each task's result as soon as it is done; the next task goes to the worker that finished first."""
        todo = iter(tasks)
        for i in range(self.n):
            if (task := next(todo, _END)) is _END:
                break
            self._send(i, task)
        while any(h is not None for h in self._holding.values()):
            i, result = self._next()
            if (task := next(todo, _END)) is not _END:
                self._send(i, task)
            yield result

    def close(self, wait_s: float = 30.0, now: bool = False) -> None:
        """Stop the workers: ask them to finish (``now``: terminate at once) and terminate those still running after
        ``wait_s`` seconds in all. No worker process outlives this call."""
        if self._closed:
            return
        self._closed = True
        procs = list(self._procs.items())
        if not now:
            for i, p in procs:
                if p.is_alive():
                    self._queues[i].put(None)
            deadline = time.monotonic() + wait_s
            while any(p.is_alive() for _, p in procs) and time.monotonic() < deadline:
                try:  # drain, so that no worker blocks on exit flushing a result nobody will read
                    self._results.get(timeout=0.1)
                except queue.Empty:
                    pass
                except (OSError, EOFError, pickle.UnpicklingError):
                    break
        for _, p in procs:
            if p.is_alive():
                p.terminate()
        for _, p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
        for q in [*self._queues.values(), self._results]:
            self._abandon(q)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close(now=exc[0] is not None)
