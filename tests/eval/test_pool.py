"""The worker pool shared by evaluation, demos and RL rollouts, with trivial workers (no simulator)."""

from __future__ import annotations

import multiprocessing as mp
import time
from functools import partial

import pytest

from tests.eval.pool_workers import Echo, FailsSetup
from vla_gen_bench.eval.pool import PoolError, WorkerPool


def _children(pool: WorkerPool) -> list:
    return list(pool._procs.values())


def test_setup_info_map_shards_in_worker_order_and_imap_unordered(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the workers set it themselves
    with WorkerPool(partial(Echo, "a"), 2) as pool:
        assert [i["index"] for i in pool.info] == [0, 1] and {i["tag"] for i in pool.info} == {"a"}
        assert all(i["omp"] == "1" for i in pool.info)
        # worker 0 finishes last: results still come back by worker index
        assert pool.map_shards([("sleep", 0.5, "x"), ("value", "y")]) == [(0, "x"), (1, "y")]
        with pytest.raises(ValueError, match="one task per worker"):
            pool.map_shards([("value", 1)])
        got = list(pool.imap_unordered([("value", k) for k in range(7)]))
        assert sorted(v for _, v in got) == list(range(7))
        # the pool lives on: the same processes answer the next call
        assert pool.map_shards([("value", 1), ("value", 2)]) == [(0, 1), (1, 2)]
        procs = _children(pool)
    assert not any(p.is_alive() for p in procs)


def test_imap_unordered_gives_the_next_task_to_the_first_free_worker():
    with WorkerPool(partial(Echo, "b"), 2) as pool:
        tasks = [("sleep", 1.5, "slow")] + [("value", k) for k in range(4)]
        got = list(pool.imap_unordered(tasks))
    assert got[-1] == (0, "slow") and {i for i, _ in got[:-1]} == {1}


def test_results_read_together_are_all_handed_out(monkeypatch):
    """A slow parent reads several workers' results in one wait; every one of them is still handed out (the last
    results of imap_unordered were once left in the inbox)."""
    pump = WorkerPool._pump

    def slow_pump(self):
        time.sleep(0.3)  # every worker has answered by now: their results arrive together
        pump(self)

    monkeypatch.setattr(WorkerPool, "_pump", slow_pump)
    with WorkerPool(partial(Echo, "together"), 3) as pool:
        for n in (2, 3, 7):
            got = list(pool.imap_unordered([("value", k) for k in range(n)]))
            assert sorted(v for _, v in got) == list(range(n))


def test_a_worker_killed_mid_task_is_replaced_and_its_task_resent(tmp_path, capsys):
    marker = tmp_path / "die"
    marker.touch()
    with WorkerPool(partial(Echo, "c"), 2, restarts=1, poll_s=0.2,
                    describe=lambda t: f"task {t[0]}") as pool:  # fmt: skip
        got = list(pool.imap_unordered([("kill_once", str(marker), k) for k in range(4)]))
        assert pool.restarted == 1
    assert not marker.exists()
    assert sorted(v for _, v in got) == [0, 1, 2, 3]  # nothing lost, nothing twice
    assert "died (exit code -9); restarting it and re-running its task kill_once" in capsys.readouterr().err


def test_restarts_exhausted_raise_pool_error_and_no_child_survives():
    pool = WorkerPool(partial(Echo, "d"), 2, restarts=1, poll_s=0.2)
    procs = _children(pool)
    with pytest.raises(PoolError, match=r"worker process \d died \(exit code -9\) after 1 restarts") as e:
        pool.map_shards([("kill",), ("sleep", 30, "x")])
    assert e.value.exitcode == -9 and not e.value.trace
    procs += _children(pool)
    pool.close(now=True)
    assert not any(p.is_alive() for p in procs)
    with WorkerPool(
        partial(Echo, "d"), 1, poll_s=0.2, name="demo worker"
    ) as pool:  # no restarts: the first death
        with pytest.raises(PoolError, match=r"^demo worker process 0 died \(exit code -9\)$"):
            pool.map_shards([("kill",)])


def test_a_worker_exception_carries_its_traceback():
    with WorkerPool(partial(Echo, "e"), 2) as pool:
        with pytest.raises(PoolError) as e:
            list(pool.imap_unordered([("value", 1), ("raise", "boom")]))
    err = e.value
    assert str(err) == "ValueError: boom" and err.index in (0, 1) and err.exitcode is None
    assert "_fail" in err.trace and "pool_workers.py" in err.trace and "ValueError: boom" in err.trace
    detailed = err.with_trace("demo worker 1 failed: ")
    assert str(detailed).startswith("demo worker 1 failed: ValueError: boom\nTraceback")
    # a result that cannot be pickled fails in the worker, loudly (a queue would drop it and hang the parent)
    with WorkerPool(partial(Echo, "e"), 1) as pool:
        with pytest.raises(PoolError, match="pickle|Pickl"):
            pool.map_shards([("unpicklable",)])


def test_a_failed_setup_raises_and_leaves_no_process():
    before = set(mp.active_children())
    with pytest.raises(PoolError, match="OSError: no simulator here") as e:
        WorkerPool(partial(FailsSetup, "f"), 2)
    assert "setup" in e.value.trace
    time.sleep(0.1)
    assert set(mp.active_children()) <= before


def test_watch_is_raised_and_chained_onto_a_worker_error():
    class Died(RuntimeError):
        pass

    state = {"dead": False}
    watch = lambda: Died("the policy process died") if state["dead"] else None  # noqa: E731
    with WorkerPool(partial(Echo, "g"), 1, watch=watch, poll_s=0.1) as pool:
        state["dead"] = True
        with pytest.raises(Died):  # noticed while waiting
            pool.map_shards([("sleep", 1.0, "x")])
    state["dead"] = False
    with WorkerPool(partial(Echo, "g"), 1, watch=watch, poll_s=0.1) as pool:
        state["dead"] = True
        with pytest.raises(
            Died
        ) as e:  # the worker's error arrives first: the death is raised, the error chained
            pool.map_shards([("raise", "lost its server")])
    assert isinstance(e.value.__cause__, PoolError) and "lost its server" in str(e.value.__cause__)


def test_close_leaves_no_child_alive_even_with_a_busy_worker():
    pool = WorkerPool(partial(Echo, "h"), 2)
    procs = _children(pool)
    pool._send(0, ("sleep", 60, "x"))  # busy: never reads its stop message in time
    t0 = time.monotonic()
    pool.close(wait_s=1.0)
    assert time.monotonic() - t0 < 10
    assert not any(p.is_alive() for p in procs)
    pool.close()  # twice is harmless
    pool = WorkerPool(partial(Echo, "h"), 1)
    procs = _children(pool)
    pool._send(0, ("sleep", 60, "x"))
    pool.close(now=True)
    assert not any(p.is_alive() for p in procs)


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """A killed ``vgb evaluate`` must not leave its simulators running their shards to the end."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    pids = tmp_path / "pids"
    script = (
        "import sys, time\n"
        "from functools import partial\n"
        "from tests.eval.pool_workers import Echo\n"
        "from vla_gen_bench.eval.pool import WorkerPool\n"
        "pool = WorkerPool(partial(Echo, 'orphan'), 2)\n"
        f"open({str(pids)!r}, 'w').write(' '.join(str(i['pid']) for i in pool.info))\n"
        "pool.map_shards([('sleep', 60, 0), ('sleep', 60, 1)])\n"
    )
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=root)
    deadline = time.time() + 60
    while not (pids.is_file() and pids.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    children = [int(p) for p in pids.read_text().split()]
    time.sleep(0.5)  # both are now busy with their 60 s task
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it has exited
            return f.read().split()[2] != "Z"

    deadline = time.time() + 10
    while any(alive(p) for p in children) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in children)


def _kill(pool: WorkerPool, i: int) -> None:
    import os
    import signal

    try:
        os.kill(pool._procs[i].pid, signal.SIGKILL)
    except ProcessLookupError:  # it died already
        pass


def _check_big(result, x: int, nbytes: int) -> None:
    _, got, data = result
    assert got == x and len(data) == nbytes and data == bytes([x % 256]) * nbytes


def test_a_worker_killed_mid_write_of_a_large_result_is_replaced_and_nothing_hangs():
    """The worker is blocked half-way through writing an 8 MB result (a pipe holds 64 KiB) when it is killed: the
    parent reads a cut-short message, discards it with the worker's pipes and gets the whole result from the
    replacement. (With one results queue shared by all workers, the victim died holding its write lock and every
    other worker blocked on it forever.)"""
    nbytes = 8 << 20
    with WorkerPool(partial(Echo, "mid"), 2, restarts=6, poll_s=0.2, context="forkserver") as pool:
        for k in range(6):
            i = k % 2
            pool._send(i, ("big", nbytes, k))
            pool._send(1 - i, ("big", nbytes, 100 + k))  # the other worker writes at the same time
            deadline = time.monotonic() + 30
            while not pool._results[i].poll(0.05):  # its first bytes are in the pipe: it is mid-write
                assert time.monotonic() < deadline
            time.sleep(0.05)
            _kill(pool, i)
            got = dict(pool._next() for _ in range(2))
            _check_big(got[i], k, nbytes)
            _check_big(got[1 - i], 100 + k, nbytes)
        assert pool.restarted == 6


def test_stress_workers_killed_at_random_instants_never_hang_lose_or_double_count():
    """Hundreds of SIGKILLs at random instants (in set-up, idle, mid-task, mid-write of results up to 4 MB): every
    task's result comes back exactly once, whole, and the pool never hangs."""
    import random
    import threading

    rng = random.Random(0)
    sizes: list[int] = []
    kills = 0
    stop = threading.Event()

    def killer(pool: WorkerPool) -> None:
        nonlocal kills
        r = random.Random(1)
        while not stop.is_set():
            time.sleep(r.uniform(0.0, 0.03))
            _kill(pool, r.randrange(pool.n))
            kills += 1

    with WorkerPool(partial(Echo, "stress"), 3, restarts=10**6, poll_s=0.2, context="forkserver") as pool:
        t = threading.Thread(target=killer, args=(pool,), daemon=True)
        t0 = time.monotonic()
        t.start()
        try:

            def tasks():  # at least 300 tasks, and on until there were 200 kills
                while len(sizes) < 300 or kills < 200:
                    sizes.append(rng.choice((16, 4096, 1 << 20, 4 << 20)))
                    yield ("big", sizes[-1], len(sizes) - 1)

            got = list(pool.imap_unordered(tasks()))
        finally:
            stop.set()
            t.join()
        took = time.monotonic() - t0
    assert sorted(x for _, x, _ in got) == list(range(len(sizes)))  # nothing lost, nothing twice
    for _, x, data in got:
        assert data == bytes([x % 256]) * sizes[x]
    assert pool.restarted >= 100, (kills, pool.restarted)
    print(f"{kills} kills, {pool.restarted} restarts, {len(sizes)} tasks in {took:.1f} s")
