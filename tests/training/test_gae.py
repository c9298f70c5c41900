"""GAE against hand-computed values, with the truncated horizon bootstrapped by V(s_T)."""

from __future__ import annotations

import numpy as np
import pytest


def test_gae_hand_computed_truncation_bootstrap():
    from vla_gen_bench.training.advantages import compute_gae

    # gamma = lambda = 0.5; r = (0, 0, 1), V = (1, 2, 3), V(s_3) = 4 (truncated: bootstrapped)
    # delta_2 = 1 + 0.5*4 - 3 = 0; delta_1 = 0 + 0.5*3 - 2 = -0.5; delta_0 = 0 + 0.5*2 - 1 = 0
    # A_2 = 0; A_1 = -0.5 + 0.25*0 = -0.5; A_0 = 0 + 0.25*(-0.5) = -0.125
    adv, ret = compute_gae(
        np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0]), np.array(4.0), None, 0.5, 0.5
    )
    np.testing.assert_allclose(adv, [-0.125, -0.5, 0.0])
    np.testing.assert_allclose(ret, [0.875, 1.5, 3.0])
    # the same episode ending in a terminal state: V(s_3) counts as 0 -> delta_2 = 1 - 3 = -2
    # A_2 = -2; A_1 = -0.5 + 0.25*(-2) = -1; A_0 = 0 + 0.25*(-1) = -0.25
    adv_t, _ = compute_gae(
        np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0]), np.array(4.0), np.array(True), 0.5, 0.5
    )
    np.testing.assert_allclose(adv_t, [-0.25, -1.0, -2.0])


def test_gae_columns_are_independent_episodes_and_lambda_one_is_monte_carlo():
    from vla_gen_bench.training.advantages import compute_gae

    rng = np.random.default_rng(0)
    r, v, last = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.normal(size=3)
    adv, _ = compute_gae(r, v, last, None, 0.9, 0.8)
    for j in range(3):
        np.testing.assert_allclose(
            adv[:, j], compute_gae(r[:, j], v[:, j], last[j], None, 0.9, 0.8)[0], rtol=1e-6
        )
    # lambda = 1: A_t = sum_k gamma^k r_{t+k} + gamma^(T-t) V(s_T) - V(s_t)
    adv1, ret1 = compute_gae(r[:, 0], v[:, 0], last[0], None, 0.9, 1.0)
    mc = [sum(0.9**k * r[t + k, 0] for k in range(6 - t)) + 0.9 ** (6 - t) * last[0] for t in range(6)]
    np.testing.assert_allclose(ret1, mc, rtol=1e-5)


def test_ppo_batch_bootstraps_each_trajectory_with_its_last_value():
    from vla_gen_bench.training.ppo import make_batch
    from vla_gen_bench.training.rollouts import Trajectory

    def traj(last, reward):
        return Trajectory(images=np.zeros((2, 8, 8, 3), np.uint8), instruction="x", tokens=np.zeros((2, 7), np.int64),
                          log_probs=np.zeros((2, 7), np.float32), values=np.zeros(2, np.float32),
                          rewards=np.array([0.0, reward], np.float32), last_value=last, success=False, grasped=False,
                          seed=1000, episode=0, group=0)  # fmt: skip

    b = make_batch([traj(1.0, 0.0), traj(0.0, 1.0)], gamma=0.5, lam=1.0)
    # trajectory 1: returns (0.25, 0.5) from the bootstrap alone; trajectory 2: (0.5, 1.0) from the reward
    np.testing.assert_allclose(b.returns, [0.25, 0.5, 0.5, 1.0])
    assert len(b) == 4 and b.instructions == ["x"] * 4


def test_rl4vla_terminal_step_gives_its_gae_numbers():
    """A 3-step trajectory with RL4VLA's gamma 0.99 / lambda 0.95. RL4VLA's buffer multiplies V(s_3) by
    mask = 1 - truncated = 0 (the horizon is terminal); ours bootstraps it. Hand-computed:
    terminal:  delta = (0 + .99*.5 - .2, .1 + .99*.9 - .5, 1 - .9) = (.295, .491, .1)
               A_2 = .1; A_1 = .491 + .9405*.1 = .58505; A_0 = .295 + .9405*.58505 = .845239525
    bootstrap: delta_2 = 1 + .99*.7 - .9 = .793; A_1 = .491 + .9405*.793 = 1.2368165;
               A_0 = .295 + .9405*1.2368165 = 1.45822592"""
    from vla_gen_bench.training.ppo import make_batch
    from vla_gen_bench.training.rollouts import Trajectory

    tr = Trajectory(images=np.zeros((3, 8, 8, 3), np.uint8), instruction="x", tokens=np.zeros((3, 7), np.int64),
                    log_probs=np.zeros((3, 7), np.float32), values=np.array([0.2, 0.5, 0.9], np.float32),
                    rewards=np.array([0.0, 0.1, 1.0], np.float32), last_value=0.7, success=True, grasped=True,
                    seed=1000, episode=0, group=0)  # fmt: skip
    term = make_batch([tr], 0.99, 0.95, truncation="terminal")
    np.testing.assert_allclose(term.advantages, [0.845239525, 0.58505, 0.1], rtol=1e-6)
    np.testing.assert_allclose(term.returns, [1.045239525, 1.08505, 1.0], rtol=1e-6)
    boot = make_batch([tr], 0.99, 0.95, truncation="bootstrap")
    np.testing.assert_allclose(boot.advantages, [1.45822592, 1.2368165, 0.793], rtol=1e-6)
    np.testing.assert_allclose(boot.returns, [1.65822592, 1.7368165, 1.693], rtol=1e-6)
    with pytest.raises(ValueError, match="allowed: bootstrap, terminal"):
        make_batch([tr], 0.99, 0.95, truncation="truncated")
