"""One pool of worker processes, used by evaluation (``vgb evaluate --workers N``), demonstrations
(``vgb collect-demos``) and RL rollouts.

Each worker is built inside its own spawned process from a picklable ``factory(index)`` and follows
:class:`PoolWorker`: ``setup()`` once (its return value is the worker's ready payload, :attr:`WorkerPool.info`),
``run(task)`` for every task it is given, ``close()`` at the end. The parent gives every worker its own task pipe and
result pipe (no lock or pipe is shared between workers) and always knows which task each one holds, so

* :meth:`WorkerPool.map_shards` gives task ``i`` to worker ``i`` and returns the results by worker index (RL: one
  share of the items per worker, the same workers every iteration);
* :meth:`WorkerPool.imap_unordered` gives the next task to whichever worker finished first (evaluation, demos);
* a worker process that dies at any instant (killed, segfault, out of memory; mid-write of a result too) is
  replaced, up to ``restarts`` times per pool, and
  the task it held is sent again to its replacement; with no restarts left the pool raises :class:`PoolError`;
* an exception in a worker comes back as :class:`PoolError` with the worker's traceback;
* a worker whose parent is killed (SIGKILL/SIGTERM, so no clean-up ran) exits within a second instead of running
  its task to the end;
* ``watch`` (a callable returning an exception or None, e.g. a policy process's ``died``) is polled while the
  parent waits: its exception is raised, chained onto a worker's error when both happen.

Tasks, results and ready payloads travel pickled (so a value that cannot be pickled fails loudly in the process that
made it instead of being lost on the way). This module imports nothing heavy: a spawned child
imports it before anything else.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
import traceback
from collections import deque
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
    """The worker process: build the worker, set it up, report ready, run tasks until ``None``, close.

    ``results`` is this worker's own pipe: messages are written by this thread, whole, with no feeder thread and no
    lock shared with any other process, so dying mid-write loses only this pipe (the parent reads EOF)."""
    import threading

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before the factory's modules (numpy, torch) are imported
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="orphan-watch").start()

    def send(*msg) -> None:
        results.send_bytes(pickle.dumps(msg, pickle.HIGHEST_PROTOCOL))

    worker = None
    tid = None
    try:
        worker = pickle.loads(factory_blob)(index)
        send("ready", tid, pickle.dumps(worker.setup(), pickle.HIGHEST_PROTOCOL))
        while (msg := tasks.recv_bytes()) != b"":
            tid, blob = pickle.loads(msg)
            out = pickle.dumps(worker.run(pickle.loads(blob)), pickle.HIGHEST_PROTOCOL)
            send("done", tid, out)
            tid = None
    except EOFError:  # the parent closed this worker's task pipe: it is gone or closing
        pass
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent, which decides
        try:
            send("error", tid, (f"{type(e).__name__}: {e}", traceback.format_exc()))
        except OSError:  # the parent is gone
            pass
    finally:
        if worker is not None:
            worker.close()


class WorkerPool:
    """``n`` worker processes (spawn context) built by ``factory(index)``; the constructor returns once every worker
    is set up (:attr:`info` holds their ready payloads by index).

    Each worker has two pipes of its own, tasks in and results out, and nothing else is shared between processes:
    the parent waits on all result pipes and all process sentinels at once. A worker that dies at any instant (even
    half-way through writing a large result) closes only its own pipes; the parent reads EOF or sees the sentinel,
    keeps whatever whole messages arrived before, discards the pipes, and re-runs the task that worker held.

    Args:
        factory: picklable callable ``index -> PoolWorker`` (a class, or ``functools.partial`` of one).
        n: number of worker processes.
        restarts: how many dead worker processes may be replaced over the pool's life (0: the first death raises).
        watch: polled while waiting; an exception it returns is raised (a worker's error is chained to it).
        poll_s: how often the parent checks ``watch`` while waiting.
        name: how messages name a worker ("worker 3 died ...", "worker process 3 died ...").
        describe: ``task -> str`` for the restart message ("restarting it and re-running its <describe(task)>").
        context: multiprocessing start method; "spawn" (the default) starts each worker from a clean interpreter.
    """

    def __init__(self, factory: Callable[[int], PoolWorker], n: int, *, restarts: int = 0,
                 watch: Callable[[], BaseException | None] | None = None, poll_s: float = 2.0, name: str = "worker",
                 describe: Callable[[Any], str] | None = None, context: str = "spawn") -> None:  # fmt: skip
        import multiprocessing as mp

        if n < 1:
            raise ValueError(f"a worker pool needs n >= 1 workers, got {n}")
        if context not in (
            "spawn",
            "forkserver",
        ):  # fork would copy the other workers' pipe ends into each child
            raise ValueError(f"context must be 'spawn' or 'forkserver', got {context!r}")
        self.n, self.restarts, self.watch, self.poll_s, self.name = n, restarts, watch, poll_s, name
        self.describe = describe or (lambda task: "task")
        self.restarted = 0
        self._factory = pickle.dumps(factory, pickle.HIGHEST_PROTOCOL)
        self._ctx = mp.get_context(context)
        self._procs: dict[int, Any] = {}
        self._tasks: dict[int, Any] = {}  # worker -> the parent's end of its task pipe
        self._results: dict[int, Any] = {}  # worker -> the parent's end of its result pipe (None after EOF)
        # worker -> (task id, task, pickled task) of the task it holds
        self._holding: dict[int, tuple[int, Any, bytes] | None] = {}
        self._ready: set[int] = set()
        self._inbox: deque[tuple[str, int, Any]] = deque()  # whole messages read, not yet handed out
        self._tid = 0
        self._closed = False
        self._watched = time.monotonic()
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
        task_r, task_w = self._ctx.Pipe(duplex=False)
        res_r, res_w = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_child_main, args=(self._factory, i, task_r, res_w, os.getpid()),
                                 daemon=True, name=f"{self.name}-{i}")  # fmt: skip
        proc.start()
        # the child has its own copies now: the parent keeps only its ends, so the child's death reads as EOF
        task_r.close()
        res_w.close()
        self._procs[i], self._tasks[i], self._results[i] = proc, task_w, res_r
        self._ready.discard(i)

    def _post(self, i: int, held: tuple[int, Any, bytes]) -> None:
        """Send a task to worker ``i``; a worker that has just died is noticed (and its task re-run) by ``_pump``."""
        try:
            self._tasks[i].send_bytes(pickle.dumps((held[0], held[2]), pickle.HIGHEST_PROTOCOL))
        except OSError:  # broken pipe: the worker is dead; its sentinel says so next
            pass

    def _send(self, i: int, task: Any) -> None:
        self._tid += 1
        held = (self._tid, task, pickle.dumps(task, pickle.HIGHEST_PROTOCOL))
        self._holding[i] = held
        if i in self._ready:  # a replacement still setting up gets it with its ready message
            self._post(i, held)

    def _receive(self, i: int) -> bool:
        """Read one whole message from worker ``i`` into the inbox; False at EOF (the worker closed or died)."""
        conn = self._results[i]
        try:
            kind, tid, payload = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # includes a message cut short by the worker's death
            conn.close()
            self._results[i] = None
            return False
        if kind == "ready":
            self._ready.add(i)
            self.info[i] = pickle.loads(payload)
            if (held := self._holding.get(i)) is not None:  # a replacement: the task its predecessor held
                self._post(i, held)
        elif kind == "done":
            held = self._holding.get(i)
            if held is None or held[0] != tid:  # not the task it holds now: already counted
                return True
            self._holding[i] = None
            payload = pickle.loads(payload)
        self._inbox.append((kind, i, payload))
        return True

    def _replace(self, i: int) -> None:
        """Worker ``i`` has exited: discard its pipes, start a replacement and give it the task it held."""
        p = self._procs[i]
        p.join(timeout=5)
        if self.restarted >= self.restarts:
            after = f" after {self.restarted} restarts; see the messages above" if self.restarts else ""
            raise PoolError(f"{self.name} process {i} died (exit code {p.exitcode}){after}", index=i,
                            exitcode=p.exitcode)  # fmt: skip
        self.restarted += 1
        held = self._holding.get(i)
        print(f"{self.name} {i} died (exit code {p.exitcode}); restarting it"
              + (f" and re-running its {self.describe(held[1])}" if held else ""), file=sys.stderr)  # fmt: skip
        self._tasks[i].close()
        if self._results[i] is not None:
            self._results[i].close()
        self._start(i)  # it is sent the held task once it is ready

    def _pump(self) -> None:
        """Wait (up to ``poll_s``) for messages and deaths; file whole messages into the inbox, replace the dead."""
        from multiprocessing.connection import wait

        if self.watch is not None and time.monotonic() - self._watched >= self.poll_s:
            self._watched = time.monotonic()
            if (err := self.watch()) is not None:
                raise err
        conns = {c: i for i, c in self._results.items() if c is not None}
        sentinels = {p.sentinel: i for i, p in self._procs.items()}
        dead = []
        for obj in wait([*conns, *sentinels], timeout=self.poll_s):
            if obj in conns:
                self._receive(conns[obj])
            else:
                dead.append(sentinels[obj])
        for i in dead:
            # keep every whole message it wrote before dying (a result it finished is not run again)
            # (poll first: a grandchild that inherited the pipe must not make this wait)
            while (c := self._results[i]) is not None and c.poll(0) and self._receive(i):
                pass
        for i in dead:
            self._replace(i)
        if not dead and not self._inbox and self.watch is not None:
            self._watched = time.monotonic()
            if (err := self.watch()) is not None:
                raise err

    def _next(self, ready: bool = False) -> tuple[int, Any]:
        """The next finished task as (worker index, result); ready messages are recorded on the way (``ready``:
        returned, as (worker index, None), too)."""
        while True:
            while not self._inbox:
                self._pump()
            kind, i, payload = self._inbox.popleft()
            if kind == "error":
                err = PoolError(payload[0], payload[1], index=i)
                if self.watch is not None and (died := self.watch()) is not None:
                    raise died from err
                raise err
            if kind == "ready":
                if ready:
                    return i, None
                continue
            return i, payload

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
        pending = 0  # tasks sent whose result has not been handed out (it may wait in the inbox)
        for i in range(self.n):
            if (task := next(todo, _END)) is _END:
                break
            self._send(i, task)
            pending += 1
        while pending:
            i, result = self._next()
            pending -= 1
            if (task := next(todo, _END)) is not _END:
                self._send(i, task)
                pending += 1
            yield result

    def close(self, wait_s: float = 30.0, now: bool = False) -> None:
        """Stop the workers: ask them to finish (``now``: terminate at once) and terminate those still running after
        ``wait_s`` seconds in all. No worker process outlives this call."""
        from multiprocessing.connection import wait

        if self._closed:
            return
        self._closed = True
        procs = list(self._procs.values())
        for c in self._tasks.values():  # EOF on its task pipe is a worker's signal to stop
            c.close()
        if not now:
            deadline = time.monotonic() + wait_s
            while any(p.is_alive() for p in procs) and (left := deadline - time.monotonic()) > 0:
                # drain, so that no worker blocks on exit writing a result nobody will read
                open_ = [c for c in self._results.values() if c is not None and not c.closed]
                for c in wait(open_, timeout=min(left, 0.1)):
                    try:
                        c.recv_bytes()
                    except (EOFError, OSError):
                        c.close()
                if not open_:
                    time.sleep(min(left, 0.05))
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
        for c in self._results.values():
            if c is not None:
                c.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close(now=exc[0] is not None)
