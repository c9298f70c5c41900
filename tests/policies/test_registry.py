import numpy as np
import pytest

from vla_gen_bench.policies.registry import PolicyError, resolve_policy


class Constant:
    """A user policy loaded through 'module:Class'."""

    def __init__(self):
        self.spec = None
        self.metadata = {}

    def reset(self, instruction):
        pass

    def act(self, obs):
        return np.zeros(7)


def test_builtin_policies_resolve():
    assert resolve_policy("scripted").spec.privileged
    assert not resolve_policy("random").spec.privileged
    a = resolve_policy("zero").act({})
    assert a.shape == (7,) and a[6] == 1.0


def test_random_policy_is_seeded_and_in_bounds():
    a = [resolve_policy("random", seed=3).act({}) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    assert np.all(np.abs(a[0][:3]) <= 0.02) and a[0][6] in (-1.0, 1.0)


def test_module_class_policy():
    p = resolve_policy("tests.policies.test_registry:Constant")
    assert p.act({}).shape == (7,)


@pytest.mark.parametrize(
    "spec,msg",
    [("scriptd", "did you mean 'scripted'"), ("no_such_module_xyz:Cls", "cannot import module"),
     ("tests.policies.test_registry:Nope", "has no attribute 'Nope'"),
     ("tests.policies.test_registry:PolicyError", "does not implement the Policy protocol"),
     ("ws://localhost:1", "cannot connect to a policy server at ws://localhost:1"),
     ("openvla:/no/such/checkpoint", "does not exist")],
)  # fmt: skip
def test_bad_policy_strings(spec, msg):
    with pytest.raises(PolicyError, match=msg):
        resolve_policy(spec)
