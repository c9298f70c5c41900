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


def test_smooth_demonstrator_succeeds_and_moves_in_small_proportional_steps(env):
    import numpy as np

    from vla_gen_bench.policies.scripted import SmoothScriptedPolicy

    steps: list[np.ndarray] = []

    class Tap(SmoothScriptedPolicy):
        def act(self, obs):
            a = super().act(obs)
            steps.append(a)
            return a

    results = [run_episode(env, Tap(), seed=2000 + s) for s in range(20)]
    rate = sum(r.success_at_end for r in results) / len(results)
    assert rate >= 0.9, [(r.seed, r.instruction, r.failure) for r in results if not r.success_at_end]
    a = np.stack(steps)
    assert np.linalg.norm(a[:, :3], axis=1).max() <= 0.04 + 1e-6  # capped at max_step
    assert np.abs(a[:, 5]).max() <= 0.5 + 1e-6
    assert set(np.unique(a[:, 6])) == {-1.0, 1.0}
