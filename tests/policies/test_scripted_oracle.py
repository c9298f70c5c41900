"""The scripted oracle is the benchmark's upper bound and the SFT demo generator: it must be reliable."""

import pytest

from vla_gen_bench.eval.runner import run_episode
from vla_gen_bench.policies.scripted import ScriptedPolicy

pytestmark = [pytest.mark.sim, pytest.mark.slow]
N_EPISODES = 50


def test_oracle_succeeds_on_at_least_90_percent_of_in_distribution_episodes(env):
    results = [run_episode(env, ScriptedPolicy(), seed=1000 + s) for s in range(N_EPISODES)]
    rate = sum(r.success_at_end for r in results) / N_EPISODES
    failures = [(r.seed, r.instruction, r.failure) for r in results if not r.success_at_end]
    assert rate >= 0.9, f"oracle success {rate:.2f} < 0.90; failures: {failures}"
    assert all(r.return_ == pytest.approx(1.2) for r in results if r.success_at_end)
