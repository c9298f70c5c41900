"""An OpenVLA checkpoint that cannot be used is refused in one line (issue 20), not with a traceback."""

from __future__ import annotations

import json

import pytest

from vla_gen_bench.policies.registry import PolicyError, resolve_policy

from .conftest import copy_checkpoint


def test_unknown_unnorm_key_is_a_policy_error(tiny_ckpt):
    with pytest.raises(PolicyError, match=r"unknown unnorm_key 'bridge_orig'; available: random_init"):
        resolve_policy(f"openvla:{tiny_ckpt}", unnorm_key="bridge_orig", device="cpu")


def test_inconsistent_norm_stats_and_non_utf8_config_are_policy_errors(tiny_ckpt, tmp_path):
    ck = copy_checkpoint(tiny_ckpt, tmp_path / "ck")
    stats = {"random_init": {"action": {"q01": [0.0] * 7, "q99": [1.0] * 6}}}
    (ck / "dataset_statistics.json").write_text(json.dumps(stats))
    with pytest.raises(PolicyError, match=r"inconsistent shapes q01 \(7,\), q99 \(6,\)"):
        resolve_policy(f"openvla:{ck}", device="cpu")
    (ck / "dataset_statistics.json").unlink()
    (ck / "config.json").write_bytes((ck / "config.json").read_bytes().replace(b"{", b"{\xff", 1))
    with pytest.raises(PolicyError, match=r"UnicodeDecodeError.*config.json"):
        resolve_policy(f"openvla:{ck}", device="cpu")
