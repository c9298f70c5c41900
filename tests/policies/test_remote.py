"""The openpi-compatible websocket protocol: a real server on a free port and a real client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vla_gen_bench.policies.base import ActionSpec
from vla_gen_bench.policies.registry import resolve_policy
from vla_gen_bench.policies.remote import RemotePolicy, RemotePolicyError, packb, parse_actions, unpackb
from vla_gen_bench.policies.serve import Serve, serve_command
from vla_gen_bench.policies.simple import RandomPolicy


def _obs(instruction="put the red cube on the plate", size=32, k=0):
    img = np.full((size, size, 3), k % 256, dtype=np.uint8)
    return {"image": img, "instruction": instruction, "state": np.arange(16, dtype=np.float32) + k}


@dataclass
class Recorder:
    """Echoes what it saw: actions carry the step index since reset and the image's first pixel."""

    chunk: int = 1
    spec: ActionSpec = field(default_factory=lambda: ActionSpec(chunk=1))
    metadata: dict[str, Any] = field(default_factory=lambda: {"name": "recorder"})
    resets: list = field(default_factory=list)
    seen: list = field(default_factory=list)

    def __post_init__(self):
        self.spec = ActionSpec(chunk=self.chunk)
        self._t = 0

    def reset(self, instruction):
        self.resets.append(instruction)
        self._t = 0

    def act(self, obs):
        self.seen.append(obs)
        self._t += 1
        a = np.zeros((self.chunk, 7), dtype=np.float32)
        a[:, 0] = self._t
        a[:, 1] = float(obs["image"][0, 0, 0])
        a[:, 2] = np.arange(self.chunk)
        a[:, 6] = 1.0
        return a[0] if self.chunk == 1 else a


class Broken:
    spec = ActionSpec()
    metadata: dict = {}

    def __init__(self, out=None):
        self.out = out

    def reset(self, instruction):
        pass

    def act(self, obs):
        if self.out is None:
            raise ZeroDivisionError("the model exploded on purpose")
        return self.out


class Slow(Broken):
    def act(self, obs):
        time.sleep(1.0)
        return np.zeros(7, np.float32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- wire format
def test_numpy_encoding_is_byte_identical_to_openpis_layout():
    arr = np.arange(14, dtype=np.float32).reshape(2, 7)
    scalar = np.int64(42)
    msg = {"actions": arr, "n": scalar, "prompt": "hi"}
    by_hand = {
        "actions": {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": "<f4", b"shape": [2, 7]},
        "n": {b"__npgeneric__": True, b"data": 42, b"dtype": "<i8"},
        "prompt": "hi",
    }
    expected = msgpack.packb(by_hand, use_bin_type=True)
    assert packb(msg) == expected
    back = unpackb(expected)
    assert back["actions"].dtype == np.float32 and back["actions"].shape == (2, 7)
    np.testing.assert_array_equal(back["actions"], arr)
    assert back["n"] == 42 and isinstance(back["n"], np.int64) and back["prompt"] == "hi"
    # an image as openpi clients send it (uint8, HWC), and a big-endian array: dtype string kept
    img = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    assert unpackb(packb({"i": img}))["i"].tobytes() == img.tobytes()
    be = np.arange(3, dtype=">f8")
    assert unpackb(packb(be)).dtype.str == ">f8"


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int32, np.bool_]),
                  shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)))  # fmt: skip
def test_numpy_round_trip(arr):
    back = unpackb(packb({"x": arr}))["x"]
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_object_dtypes_are_refused_both_ways():
    with pytest.raises(TypeError, match="object"):
        packb({"x": np.array([{"a": 1}], dtype=object)})
    forged = msgpack.packb(
        {b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "|O", b"shape": [1]}, use_bin_type=True
    )
    with pytest.raises(ValueError, match="refusing numpy dtype"):
        unpackb(forged)
    short = msgpack.packb(
        {b"__ndarray__": True, b"data": b"\x00" * 7, b"dtype": "<f4", b"shape": [2]}, use_bin_type=True
    )
    with pytest.raises(ValueError, match="needs 8 bytes, got 7"):
        unpackb(short)
    with pytest.raises(ValueError, match="not a msgpack"):
        unpackb(b"\xc1garbage")


def test_parse_actions_rejects_malformed_replies():
    ok = parse_actions({"actions": np.zeros((4, 7), np.float32), "server_timing": {"infer_ms": 1.0}})
    assert ok.shape == (4, 7)
    assert parse_actions({"actions": np.zeros(7, np.int32)}).dtype == np.float64
    with pytest.raises(RemotePolicyError, match="no 'actions' key"):
        parse_actions({"action": np.zeros(7)}, "ws://h:1")
    with pytest.raises(RemotePolicyError, match=r"shape \(8,\), expected \(7,\) or \(chunk, 7\)"):
        parse_actions({"actions": np.zeros(8)})
    with pytest.raises(RemotePolicyError, match=r"shape \(0, 7\)"):
        parse_actions({"actions": np.zeros((0, 7))})
    with pytest.raises(RemotePolicyError, match="dtype <U"):
        parse_actions({"actions": np.array(["a"] * 7)})
    with pytest.raises(RemotePolicyError, match="must be a numpy array"):
        parse_actions({"actions": "move left"})
    with pytest.raises(RemotePolicyError, match="expected a dict"):
        parse_actions([1, 2])


# ---------------------------------------------------------------------------- client <-> server
def test_round_trip_single_actions_metadata_and_resets(served):
    pol = Recorder()
    url, _ = served(pol, name="recorder")
    client = RemotePolicy(url, timeout_s=10)
    assert client.metadata["policy"] == "recorder" and client.metadata["metadata"] == {"name": "recorder"}
    assert client.metadata["remote_url"] == url and client.spec == ActionSpec(chunk=1)
    client.reset("put the red cube on the plate")
    a1 = client.act(_obs(k=7))
    a2 = client.act(_obs(k=9))
    assert a1.shape == (7,) and a1.dtype == np.float32
    assert (a1[0], a1[1], a2[0], a2[1]) == (1.0, 7.0, 2.0, 9.0)
    # same instruction, new episode: our client flags the reset so the step counter restarts
    client.reset("put the red cube on the plate")
    assert client.act(_obs(k=1))[0] == 1.0
    assert pol.resets == ["put the red cube on the plate"] * 2
    seen = pol.seen[0]
    assert (
        seen["instruction"] == "put the red cube on the plate"
        and "prompt" not in seen
        and "reset" not in seen
    )
    assert seen["state"].dtype == np.float32 and seen["state"][3] == 10.0
    client.close()


def test_action_chunks_and_same_actions_as_in_process(served):
    url, _ = served(Recorder(chunk=4))
    client = RemotePolicy(url)
    assert client.spec.chunk == 4
    client.reset("x")
    a = client.act(_obs(k=3))
    assert a.shape == (4, 7) and list(a[:, 2]) == [0, 1, 2, 3] and (a[:, 1] == 3).all()
    # a seeded random policy gives bit-identical actions served or in-process
    url2, _ = served(RandomPolicy(seed=5))
    remote, local = RemotePolicy(url2), RandomPolicy(seed=5)
    remote.reset("x")
    local.reset("x")
    for k in range(5):
        np.testing.assert_array_equal(remote.act(_obs(k=k)), local.act(_obs(k=k)))


def test_openpi_style_client_without_reset_flag(served):
    """A plain openpi client: no reset flag, instruction as 'prompt', LIBERO-style key names."""
    from websockets.sync.client import connect

    pol = Recorder()
    url, _ = served(pol)
    with connect(url, compression=None) as ws:
        meta = unpackb(ws.recv(timeout=5))
        assert meta["action_spec"]["dim"] == 7 and meta["vgb_reset_flag"] is True
        obs = {
            "observation/image": np.zeros((8, 8, 3), np.uint8),
            "observation/state": np.zeros(8, np.float32),
        }
        for prompt in ("a", "a", "b"):
            ws.send(packb({**obs, "prompt": prompt}))
            reply = unpackb(ws.recv(timeout=5))
            assert reply["actions"].shape == (7,)
        ws.send(packb({"reset": True, "instruction": "b"}))
        assert unpackb(ws.recv(timeout=5)) == {"reset": True}
    # reset on first observation, on the change a -> b, and on the explicit reset frame
    assert pol.resets == ["a", "b", "b"]
    assert pol.seen[0]["image"].shape == (8, 8, 3) and pol.seen[0]["instruction"] == "a"


def test_key_map_sends_aliases(served):
    pol = Recorder()
    url, _ = served(pol)
    client = RemotePolicy(url, key_map={"image": "observation/wrist_image"})
    client.reset("x")
    client.act(_obs(k=2))
    assert pol.seen[0]["observation/wrist_image"][0, 0, 0] == 2


def test_url_options_reach_the_client_not_the_server(served):
    from vla_gen_bench.policies.remote import split_url_options

    assert split_url_options("ws://h:1?timeout=5&map=image:observation/image,image:observation/wrist_image") == (
        "ws://h:1", {"timeout": 5.0, "map": [("image", "observation/image"), ("image", "observation/wrist_image")]})  # fmt: skip
    with pytest.raises(RemotePolicyError, match="unknown option 'timout'"):
        split_url_options("ws://h:1?timout=5")
    with pytest.raises(RemotePolicyError, match="expected ours:theirs pairs"):
        split_url_options("ws://h:1?map=image")
    pol = Recorder()
    url, _ = served(pol)
    client = resolve_policy(url + "?timeout=7&map=state:observation/state,state:proprio")
    assert client.url == url and client.timeout_s == 7.0 and client.metadata["remote_url"] == url
    client.reset("x")
    client.act(_obs(k=1))
    assert pol.seen[0]["observation/state"][0] == 1.0 and pol.seen[0]["proprio"][0] == 1.0


def test_healthz(served):
    url, _ = served(Recorder())
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=5) as r:
        assert r.status == 200 and r.read() == b"ok\n"


def test_oversize_message_is_refused_and_server_survives(served):
    url, _ = served(Recorder(), max_message_bytes=20_000)
    client = RemotePolicy(url)
    client.reset("x")
    with pytest.raises(
        RemotePolicyError, match=r"refused a \d+-byte observation as too big .*--max-message-bytes"
    ):
        client.act(_obs(size=224))
    # the next episode reconnects; small frames still work
    client.reset("x")
    assert client.act(_obs(size=16)).shape == (7,)


def test_server_errors_reach_the_client_as_one_line_and_the_server_logs_them(served, caplog):
    url, _ = served(Broken())
    client = RemotePolicy(url)
    client.reset("x")
    with caplog.at_level("ERROR", logger="vla_gen_bench.policies.serve"):
        with pytest.raises(
            RemotePolicyError, match=r"raised an error: ZeroDivisionError: the model exploded"
        ) as e:
            client.act(_obs())
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value) and ".py" not in str(e.value)
    assert "Traceback" in caplog.text and "the model exploded" in caplog.text  # the server keeps the details
    # the connection stays usable after an error frame
    with pytest.raises(RemotePolicyError, match="ZeroDivisionError"):
        client.act(_obs())


def test_bad_observation_gets_a_clear_error_frame(served):
    url, _ = served(Recorder())
    client = RemotePolicy(url)
    client.reset("x")
    with pytest.raises(
        RemotePolicyError,
        match=r"'image' must be an \(H, W, 3\) uint8 array, got uint8 array of shape \(4, 4\)",
    ):
        client.act({"image": np.zeros((4, 4), np.uint8), "instruction": "x", "state": np.zeros(3)})


def test_malformed_reply_from_server_policy(served):
    url, _ = served(Broken(out=np.zeros(6, np.float32)))
    client = RemotePolicy(url)
    client.reset("x")
    with pytest.raises(RemotePolicyError, match=r"malformed reply .*shape \(6,\)"):
        client.act(_obs())


def test_timeout(served):
    url, _ = served(Slow())
    client = RemotePolicy(url, timeout_s=0.2)
    client.reset("x")
    with pytest.raises(RemotePolicyError, match=r"no reply from the policy server at .* within 0.2 s"):
        client.act(_obs())


def test_connection_refused_names_url_and_serve_command():
    url = f"ws://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    with pytest.raises(
        RemotePolicyError,
        match=rf"cannot connect to a policy server at {url} after 3 attempt.*vgb serve --policy",
    ):
        RemotePolicy(url, connect_retries=2, backoff_s=0.05)
    assert time.perf_counter() - t0 >= 0.15  # backoff 0.05 + 0.1 was waited
    with pytest.raises(RemotePolicyError, match="must start with ws://"):
        RemotePolicy("http://127.0.0.1:1")


def test_registry_resolves_ws_urls_and_ignores_in_process_options(served):
    url, _ = served(Recorder())
    pol = resolve_policy(url, seed=3, unnorm_key="bridge_orig")
    assert isinstance(pol, RemotePolicy) and pol.url == url


def test_pickled_client_reconnects_on_reset(served):
    import pickle

    url, _ = served(RandomPolicy(seed=1))
    client = pickle.loads(pickle.dumps(RemotePolicy(url)))
    with pytest.raises(RemotePolicyError, match="call reset"):
        client.act(_obs())
    client.reset("x")
    assert client.act(_obs()).shape == (7,)


def test_serve_command_subprocess_and_server_death_mid_episode(tmp_path):
    port = _free_port()
    code = (f"from vla_gen_bench.policies.serve import Serve, serve_command; "
            f"serve_command(Serve(policy='random', host='127.0.0.1', port={port}))")  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        client = RemotePolicy(f"ws://127.0.0.1:{port}", connect_retries=8, backoff_s=0.25)
        assert client.metadata["policy"] == "random" and client.metadata["metadata"]["kind"] == "baseline"
        client.reset("x")
        assert client.act(_obs()).shape == (7,)
        proc.kill()
        proc.wait(10)
        with pytest.raises(
            RemotePolicyError,
            match=f"policy server at ws://127.0.0.1:{port} closed the connection mid-episode",
        ):
            client.act(_obs())
        client.connect_retries = 0
        with pytest.raises(RemotePolicyError, match="cannot connect"):
            client.reset("x")  # reconnect attempt, server gone
    finally:
        proc.kill()
        proc.wait(10)


def test_serve_config_parses_typed_policy_options_and_the_deprecated_spelling(capsys):
    import tyro

    from vla_gen_bench.cli import upgrade
    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.policies.registry import PolicyError

    want = Serve(policy="zero", port=9001, max_message_bytes=1000,
                 policy_options=PolicyOptions(seed=3, unnorm_key="k", extra={"name": "x"}))  # fmt: skip
    new = ["--policy", "zero", "--port", "9001", "--max-message-bytes", "1000", "--policy.seed", "3",
           "--policy.unnorm-key", "k", "--policy.extra", "name=x"]  # fmt: skip
    assert tyro.cli(Serve, args=new) == want
    old = ["--policy", "zero", "--port", "9001", "--max-message-bytes", "1000", "--policy-arg", "seed=3",
           "--unnorm-key", "k", "--policy-arg", "name=x"]  # fmt: skip
    assert tyro.cli(Serve, args=upgrade("serve", Serve, old)) == want
    err = capsys.readouterr().err
    assert (
        "--policy-arg seed=3 is deprecated; use --policy.seed 3" in err and "use --policy.unnorm-key k" in err
    )
    with pytest.raises(ValueError, match="key=value"):
        upgrade("serve", Serve, ["--policy", "zero", "--policy-arg", "seed"])
    with pytest.raises(PolicyError, match="zero does not accept option"):  # refused before anything is served
        serve_command(Serve(policy="zero", policy_options=PolicyOptions(seed=3)))


def test_serve_command_reports_a_busy_port(served, capsys):
    url, server = served(Recorder())
    assert serve_command(Serve(policy="zero", host="127.0.0.1", port=server.port)) == 1
    assert f"cannot listen on 127.0.0.1:{server.port}" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- a quiet, honest server
def _stats(url: str) -> dict:
    import json

    with urllib.request.urlopen(url.replace("ws://", "http://") + "/stats", timeout=5) as r:
        return json.loads(r.read())


BAD_FRAMES = [
    b"\xc1\xc1 garbage",  # not msgpack
    packb([1, 2, 3]),  # msgpack, but not a map
    packb({"instruction": "x", "state": np.zeros(3, np.float32)}),  # no image
    packb({"image": np.zeros((4, 4), np.uint8), "instruction": "x"}),  # wrong image shape
    packb({"image": np.zeros((8, 8, 3), np.uint8), "instruction": 5}),  # wrong key type
    "a text frame",
]


def test_bad_frames_get_one_line_replies_and_are_logged_one_line_each_rate_limited(served, caplog):
    from websockets.sync.client import connect

    from vla_gen_bench.policies.serve import LOG_LIMIT

    url, server = served(Recorder())
    n = 5 * len(BAD_FRAMES)
    with caplog.at_level("INFO", logger="vla_gen_bench.policies.serve"), connect(url, max_size=None) as ws:
        ws.recv()  # metadata
        for i in range(n):
            ws.send(BAD_FRAMES[i % len(BAD_FRAMES)])
            reply = ws.recv(timeout=10)
            assert (
                isinstance(reply, str) and "\n" not in reply and reply.split(": ", 1)[0] == "RequestError"
            ), reply
        ws.send(packb(_obs()))  # the connection still works
        assert unpackb(ws.recv(timeout=10))["actions"].shape == (7,)
    bad = [r for r in caplog.records if "bad frame" in r.getMessage()]
    assert len(bad) == LOG_LIMIT < n, [r.getMessage() for r in bad]
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in bad)
    assert "Traceback" not in caplog.text
    assert server.bad_frame_log.suppressed == n - LOG_LIMIT
    stats = _stats(url)
    assert stats["bad_frames"] == n and stats["requests"] == 1 and stats["failed"] == 0, stats


def test_log_limit_counts_what_it_suppresses_and_says_so_when_the_window_ends(caplog):
    import logging

    from vla_gen_bench.policies.serve import RateLimitedLog

    now = [0.0]
    logger = logging.getLogger("vgb-test-limit")
    lim = RateLimitedLog(logger, "bad frames", limit=3, window_s=10.0, clock=lambda: now[0])
    with caplog.at_level("INFO", logger="vgb-test-limit"):
        shown = [lim.log(logging.WARNING, "bad frame %d", i) for i in range(8)]
        assert shown == [True] * 3 + [False] * 5 and len(caplog.records) == 3
        now[0] = 9.9
        lim.flush()  # the window is not over yet
        assert len(caplog.records) == 3
        now[0] = 10.0
        lim.flush()
        assert (
            caplog.records[-1].getMessage() == "... 5 more bad frames suppressed (at most 3 lines per 10 s)"
        )
        assert lim.log(logging.WARNING, "bad frame again")  # a new window
        assert len(caplog.records) == 5


def test_stats_count_every_request_with_and_without_batching(served):
    k = 7
    for options in ({}, {"max_batch": 4}):
        policy = Recorder()
        if options:  # a batched policy
            policy.act_batch = lambda images, instructions: np.zeros((len(images), 7), np.float32)
        url, server = served(policy, **options)
        assert server.batching == bool(options)
        client = RemotePolicy(url)
        client.reset("x")
        for t in range(k):
            client.act(_obs(k=t))
        stats = _stats(url)
        assert stats["requests"] == k and stats["bad_frames"] == 0 and stats["failed"] == 0, (options, stats)
        if options:
            assert stats["batches"] == k and stats["mean_batch"] == 1.0, stats


def test_policy_exceptions_are_counted_and_their_tracebacks_rate_limited(served, caplog):
    from vla_gen_bench.policies.serve import LOG_LIMIT

    url, _ = served(Broken())
    client = RemotePolicy(url)
    client.reset("x")
    n = LOG_LIMIT + 5
    with caplog.at_level("ERROR", logger="vla_gen_bench.policies.serve"):
        for _ in range(n):
            with pytest.raises(RemotePolicyError, match="ZeroDivisionError"):
                client.act(_obs())
    logged = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(logged) == LOG_LIMIT and all(r.exc_info is not None for r in logged)  # the details are kept
    stats = _stats(url)
    assert stats["requests"] == n and stats["failed"] == n and stats["bad_frames"] == 0, stats
