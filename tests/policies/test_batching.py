"""Dynamic batching in the policy server: concurrent clients answered by one act_batch call per batch."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from vla_gen_bench.policies.base import ActionSpec, supports_batches, takes_sample_keys
from vla_gen_bench.policies.remote import RemotePolicy, RemotePolicyError
from vla_gen_bench.policies.serve import act_rows


@dataclass
class BatchEcho:
    """act_batch echoes each row's first pixel, instruction length and sample key; records the batch sizes."""

    delay_s: float = 0.02
    spec: ActionSpec = field(default_factory=ActionSpec)
    metadata: dict[str, Any] = field(default_factory=lambda: {"name": "batch-echo"})
    sizes: list = field(default_factory=list)
    resets: int = 0

    def reset(self, instruction):
        self.resets += 1

    def act(self, obs):  # pragma: no cover - the batching server must not call it
        raise AssertionError("act() called on a batched policy")

    def act_batch(self, images, instructions, sample_keys=None):
        self.sizes.append(len(images))
        time.sleep(self.delay_s)  # a model's forward pass: requests pile up meanwhile
        out = np.zeros((len(images), 7), np.float32)
        out[:, 0] = images[:, 0, 0, 0]
        out[:, 1] = [len(s) for s in instructions]
        out[:, 2] = [-1 if k is None else k % 1000 for k in (sample_keys or [None] * len(images))]
        out[:, 6] = 1
        return out


def _obs(k: int, size: int = 16) -> dict:
    return {
        "image": np.full((size, size, 3), k, np.uint8),
        "instruction": "x" * (k + 1),
        "state": np.zeros(3),
    }


def _clients(url: str, n: int, steps: int, keyed: bool = True) -> list[list[np.ndarray]]:
    """``n`` concurrent clients, each sending ``steps`` observations; returns every client's replies."""
    clients = [RemotePolicy(url, timeout_s=30) for _ in range(n)]
    replies: list[list[np.ndarray]] = [[] for _ in range(n)]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            clients[i].reset("x")
            for t in range(steps):
                obs = _obs(10 * i + t)
                if keyed:
                    obs["sample_key"] = 1000 * i + t
                replies[i].append(clients[i].act(obs))
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in clients:
        c.close()
    if errors:
        raise errors[0]
    return replies


def test_a_batched_policy_is_declared_by_act_batch():
    assert supports_batches(BatchEcho()) and supports_batches(BatchEcho)
    assert takes_sample_keys(BatchEcho().act_batch)
    assert not supports_batches(object())


def test_concurrent_clients_are_answered_in_batches_each_with_its_own_row(served):
    policy = BatchEcho()
    url, s = served(policy, max_batch=8, max_wait_ms=50)
    replies = _clients(url, n=4, steps=6)
    for i, rows in enumerate(replies):
        for t, a in enumerate(rows):
            assert a.shape == (7,)
            assert (
                a[0] == 10 * i + t and a[1] == 10 * i + t + 1 and a[2] == t
            )  # its own image, prompt and key
    stats = s.stats.to_dict()
    assert stats["requests"] == 24 and sum(policy.sizes) == 24
    assert max(policy.sizes) == 4, f"four waiting clients should share one forward pass: {policy.sizes}"
    assert stats["mean_batch"] >= 2.0, stats
    assert policy.resets == 0, "a batched policy is shared: reset() is never called per connection"
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/stats", timeout=5) as r:
        assert json.loads(r.read())["requests"] == 24


def test_max_batch_caps_the_batch(served):
    policy = BatchEcho()
    url, _ = served(policy, max_batch=2, max_wait_ms=50)
    _clients(url, n=4, steps=3)
    assert max(policy.sizes) <= 2 and sum(policy.sizes) == 12


def test_a_lone_client_is_not_held_back_by_the_wait(served):
    """The batch is cut as soon as every open connection is in it: one client never waits max_wait_ms."""
    policy = BatchEcho(delay_s=0.0)
    url, _ = served(policy, max_batch=32, max_wait_ms=2000)
    t0 = time.perf_counter()
    _clients(url, n=1, steps=5)
    assert time.perf_counter() - t0 < 5.0
    assert policy.sizes == [1] * 5


def test_max_batch_one_turns_batching_off(served):
    class Both(BatchEcho):
        def act(self, obs):
            return np.full(7, 0.5, np.float32)

    policy = Both()
    url, s = served(policy, max_batch=1)
    assert not s.batching and s.metadata["batching"] is None
    assert _clients(url, n=2, steps=2)[0][0][0] == 0.5 and policy.sizes == []


def test_metadata_advertises_protocol_2_and_batching(served):
    url, s = served(BatchEcho(), max_batch=16, max_wait_ms=3)
    c = RemotePolicy(url)
    assert c._server_meta["vgb_protocol"] == 2
    assert c._server_meta["batching"] == {"max_batch": 16, "max_wait_ms": 3.0}
    assert c.metadata["metadata"] == {"name": "batch-echo"}
    c.close()


def test_the_auto_wait_merges_clients_that_drift_apart(served):
    """Two groups of clients out of phase (as simulator workers drift): with the automatic wait (a quarter of the
    forward time) the late group joins the batch instead of forming its own; with no wait they stay split."""

    def run(wait):
        policy = BatchEcho(delay_s=0.2)
        url, _ = served(policy, max_batch=8, max_wait_ms=wait)
        clients = [RemotePolicy(url, timeout_s=30) for _ in range(4)]

        def loop(i: int) -> None:
            time.sleep(0.03 * (i % 2))  # odd clients start (and, stepping 20 ms, stay) a little behind
            for _ in range(6):
                clients[i].act(_obs(i))
                time.sleep(0.02)

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for c in clients:
            c.close()
        return policy.sizes

    merged, split = run(None), run(0.0)
    assert merged.count(4) >= 4 and len(merged) <= 8, (
        merged
    )  # after the first pass, (nearly) all batches are full
    assert split.count(4) <= 1 and len(split) >= 10, split


def test_a_bad_sample_key_is_refused_for_that_client_only(served):
    url, _ = served(BatchEcho(), max_batch=8, max_wait_ms=1)
    c = RemotePolicy(url)
    c.reset("x")
    with pytest.raises(RemotePolicyError, match="sample_key"):
        c.act({**_obs(1), "sample_key": -5})
    assert c.act({**_obs(2), "sample_key": 7})[2] == 7  # the connection survives
    c.close()


def test_a_failing_batch_reports_to_every_client_and_the_server_survives(served):
    class Flaky(BatchEcho):
        fail = True

        def act_batch(self, images, instructions, sample_keys=None):
            if self.fail:
                self.fail = False
                raise ZeroDivisionError("the model exploded on purpose")
            return super().act_batch(images, instructions, sample_keys)

    url, _ = served(Flaky(), max_batch=8, max_wait_ms=1)
    c = RemotePolicy(url)
    c.reset("x")
    with pytest.raises(RemotePolicyError, match="exploded on purpose"):
        c.act(_obs(1))
    assert c.act(_obs(3))[0] == 3
    c.close()


def test_act_rows_groups_by_image_shape_and_checks_the_output():
    policy = BatchEcho(delay_s=0)
    rows = act_rows(policy, [_obs(1, 16), _obs(2, 32), _obs(3, 16)])
    assert [r[0] for r in rows] == [1, 2, 3] and sorted(policy.sizes) == [1, 2]

    class Wrong(BatchEcho):
        def act_batch(self, images, instructions, sample_keys=None):
            return np.zeros((len(images) + 1, 7))

    with pytest.raises(TypeError, match="expected"):
        act_rows(Wrong(), [_obs(1)])
