"""Fixtures for the policy-server tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def served():
    """``served(policy, **server_options) -> (url, server)``: a policy server on a free local port, stopped at
    teardown."""
    from vla_gen_bench.policies.serve import PolicyServer

    servers = []

    def start(policy, **kw):
        s = PolicyServer(policy, host="127.0.0.1", port=0, **kw)
        port = s.start()
        servers.append(s)
        return f"ws://127.0.0.1:{port}", s

    yield start
    for s in servers:
        s.stop()
