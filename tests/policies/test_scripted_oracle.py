"""The scripted oracle is the benchmark's upper bound and the SFT demo generator: it must be reliable."""

import pytest

from vla_gen_bench.eval.runner import run_episode
from vla_gen_bench.policies.scripted import ScriptedPolicy

pytestmark = [pytest.mark.sim, pytest.mark.slow]
N_EPISODES = 50


def test_oracle_succeeds_on_at_least_90_percent_of_in_distribution_episodes(env):
    results = [run_episode(env, ScriptedPolicy(), seed=1000 + s) for s in range(N_EPISODES)]
    rate = sum(r.success for r in results) / N_EPISODES
    failures = [(r.seed, r.instruction, r.failure) for r in results if not r.success]
    assert rate >= 0.9, f"oracle success {rate:.2f} < 0.90; failures: {failures}"
    assert all(r.return_ == pytest.approx(1.2) for r in results if r.success)


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
    rate = sum(r.success for r in results) / len(results)
    assert rate >= 0.9, [(r.seed, r.instruction, r.failure) for r in results if not r.success]
    a = np.stack(steps)
    assert np.linalg.norm(a[:, :3], axis=1).max() <= 0.04 + 1e-6  # capped at max_step
    assert np.abs(a[:, 5]).max() <= 0.5 + 1e-6
    assert set(np.unique(a[:, 6])) == {-1.0, 1.0}


def test_smooth_demonstrator_reads_its_phase_from_the_state_when_labelling_another_policy():
    """from_state (DAgger labels): an object in hand means carry on (gripper closed), an object resting on the
    receptacle means retreat (open), an empty hand in the carry phase means start over (open, go to the object);
    without from_state the demonstrator keeps its own phase (its history), as in plain demonstrations."""
    import numpy as np

    from vla_gen_bench.policies.scripted import SmoothScriptedPolicy

    quat = [1.0, 0.0, 0.0, 0.0]

    def privileged(tcp, obj, grasped):
        return {"privileged": {
            "ee_target_pose": np.array([*tcp, *quat]), "tcp_pose": np.array([*tcp, *quat]),
            "object_pose": np.array([*obj, *quat]), "receptacle_pose": np.array([0.45, 0.15, 0.0, *quat]),
            "object_grasp": np.zeros(3), "object_height": 0.04, "receptacle_height": 0.02,
            "is_grasped": np.bool_(grasped),
        }}  # fmt: skip

    def label(policy, obs, phase):
        policy.reset("put it on the plate")
        policy.phase = phase
        return policy.act(obs), policy.phase

    held_high = privileged([0.5, 0.0, 0.15], [0.5, 0.0, 0.12], grasped=True)
    a, phase = label(SmoothScriptedPolicy(from_state=True), held_high, "approach")
    assert phase == "carry" and a[6] == -1.0  # keep it closed, head for the receptacle
    assert a[0] < 0 and a[1] > 0
    a, phase = label(SmoothScriptedPolicy(), held_high, "approach")
    assert phase == "approach" and a[6] == 1.0  # its own history says "not grasped yet"
    placed = privileged([0.45, 0.15, 0.08], [0.45, 0.15, 0.02], grasped=False)
    a, phase = label(SmoothScriptedPolicy(from_state=True), placed, "carry")
    assert phase == "retreat" and a[6] == 1.0 and a[2] > 0
    empty = privileged([0.5, 0.0, 0.15], [0.6, -0.1, 0.0], grasped=False)
    a, phase = label(SmoothScriptedPolicy(from_state=True), empty, "carry")
    assert phase == "approach" and a[6] == 1.0 and a[0] > 0 and a[1] < 0
