"""Shared helpers for the RL tests (a micro checkpoint per process) and tests of the pieces PPO, GRPO and DPO
share (training/rl_config.py, actor_critic.py, rollouts.py, run_dir.py)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest

from vla_gen_bench.options import PolicyOptions
from vla_gen_bench.training.rl_config import RolloutConfig

SAMPLED = RolloutConfig(policy=PolicyOptions(temperature=1.0))
"""Rollout settings of the unit tests: RL samples, at RL4VLA's 1.0 (an RL config always says its temperature)."""


@functools.lru_cache(maxsize=1)
def micro_ckpt() -> Path:
    """A ``micro`` random-init checkpoint (HF layout), written once per test process."""
    from vla_gen_bench.models.checkpoint import init_checkpoint

    return init_checkpoint("micro", Path(tempfile.mkdtemp(prefix="vgb-rl-")) / "micro", seed=0)


def micro_ac(with_value: bool = True, seed: int = 0, perturb: float = 0.05, **model):
    """A micro actor-critic whose LoRA B matrices are perturbed (so the adapters change the policy)."""
    import torch

    from vla_gen_bench.training.actor_critic import build_actor_critic
    from vla_gen_bench.training.rl_config import ModelConfig

    ac = build_actor_critic(ModelConfig(init=micro_ckpt(), lora_r=4, device="cpu", dtype="float32", **model),
                            with_value=with_value, seed=seed)  # fmt: skip
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, p in ac.vla.model.named_parameters():
            if "lora_B" in n and perturb:
                p.copy_(torch.randn(p.shape, generator=g) * perturb)
    return ac


def images(n: int, seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    out[: n // 2, :20] = 255  # two visibly different kinds of image
    return out


def fake_trajectories(ac, n: int, horizon: int = 4, groups=None, returns=None, seed: int = 0):
    """Trajectories recorded by the real RolloutPolicy on random images (no simulator)."""
    from vla_gen_bench.training.rollouts import RolloutPolicy, Trajectory

    pol = RolloutPolicy(ac, temperature=1.0, seed=seed)
    out = []
    for i in range(n):
        pol.records = []
        imgs = images(horizon, seed=seed * 100 + i)
        for t in range(horizon):
            pol.act_batch(imgs[t : t + 1], ["put red cube on plate"])
        rec = pol.records
        rewards = np.zeros(horizon, np.float32)
        if returns is not None:
            rewards[-1] = returns[i]
        values = np.concatenate([r["values"] for r in rec]) if rec[0]["values"] is not None else None
        out.append(Trajectory(
            images=imgs, instruction="put red cube on plate", tokens=np.concatenate([r["tokens"] for r in rec]),
            log_probs=np.concatenate([r["log_probs"] for r in rec]), values=values, rewards=rewards,
            last_value=0.3, success=bool(rewards.sum() > 0.5), grasped=False, seed=1000, episode=i,
            group=groups[i] if groups is not None else i,
        ))  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------ tests
def test_training_items_refuse_test_pools_and_eval_seeds():
    from vla_gen_bench.training.rollouts import training_items
    from vla_gen_bench.variants import TrainingPoolError

    items = training_items("ind", 1000, 0, 3, repeats=2)
    assert [it.group for it in items] == [0, 0, 1, 1, 2, 2]
    assert items[0].spec == items[1].spec and items[0].spec != items[2].spec
    for variant in ("unseen_objects", "unseen_table"):
        with pytest.raises(TrainingPoolError, match="test pool"):
            training_items(variant, 1000, 0, 2)
    with pytest.raises(ValueError, match="evaluation seeds"):
        training_items("ind", 0, 0, 1)


def test_training_config_on_a_test_pool_is_refused(tmp_path):
    """train() checks every episode before rolling out: a test-pool variant never reaches the simulator."""
    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.ppo import PPOConfig, train
    from vla_gen_bench.training.rl_config import ModelConfig, RolloutConfig
    from vla_gen_bench.variants import TrainingPoolError

    class NoEnv:  # any use of the env would fail loudly
        class unwrapped:  # noqa: N801
            num_envs = 1

    cfg = PPOConfig(out=tmp_path / "run", model=ModelConfig(init=micro_ckpt(), lora_r=4, device="cpu", dtype="float32"),
                    rollout=RolloutConfig(variant="unseen_objects", workers=0, policy=PolicyOptions(temperature=1.0)), iterations=1)  # fmt: skip
    with pytest.raises(TrainingPoolError):
        train(cfg, env=NoEnv())


def test_recipes_hold_ours_released_and_text_values():
    """`ours` keeps this benchmark's loss; `released` is RL4VLA's code (terminal step 80, 7x surrogate, weight
    decay, warm-up start, its adapter continued where the warm-up has one); `text` the paper text's numbers."""
    from vla_gen_bench.training.rl_commands import resolve_config

    loss = lambda c: (c.gamma, c.gae_lambda, c.clip_coef, c.truncation, c.pg_coef, c.weight_decay)  # noqa: E731
    for preset, default in (("tiny", "ours"), ("openvla-7b", "released")):
        assert resolve_config("ppo", preset=preset).hparams == default
        ours = resolve_config("ppo", preset=preset, hparams="ours")
        rel = resolve_config("ppo", preset=preset, hparams="released")
        txt = resolve_config("ppo", preset=preset, hparams="text")
        assert loss(ours) == (0.99, 0.95, 0.2, "bootstrap", 1.0, 0.0) and not ours.model.continue_adapter
        assert loss(rel) == (0.99, 0.95, 0.2, "terminal", 7.0, 0.01)
        assert loss(txt) == (0.96, 0.85, 0.1, "terminal", 7.0, 0.01)
        assert "sft" in str(ours.model.init)
        assert "warmup" in str(rel.model.init) and rel.model.init == txt.model.init
        assert rel.update_epochs == 1 and rel.rollout.temperature == 1.0 and rel.hparams == "released"
        assert txt.update_epochs == 1 and txt.rollout.temperature == 1.0
    assert resolve_config("ppo", preset="openvla-7b").model.continue_adapter  # LoRA warm-up
    assert not resolve_config("ppo", preset="tiny", hparams="released").model.continue_adapter  # full FT
    cfg = resolve_config("ppo", gamma=0.5, rollout={"workers": 1}, eval={"seeds": [0, 1]}, iterations=3)
    assert (cfg.gamma, cfg.rollout.workers, cfg.eval.seeds, cfg.iterations) == (0.5, 1, (0, 1), 3)
    with pytest.raises(ValueError, match="did you mean 'released'"):
        resolve_config("ppo", hparams="releasd")
    with pytest.raises(ValueError, match="did you mean 'gamma'"):
        resolve_config("ppo", gama=0.5)
    with pytest.raises(FileNotFoundError, match="available: openvla-7b, tiny"):
        resolve_config("grpo", preset="huge")


def test_metrics_log_keeps_columns_across_resume(tmp_path):
    from vla_gen_bench.training.run_dir import MetricsLog

    MetricsLog(tmp_path / "m.csv").log({"iteration": 1, "loss": 0.5})
    log = MetricsLog(tmp_path / "m.csv")
    log.log({"iteration": 2, "loss": 0.25, "extra": 1})
    assert log.rows() == [{"iteration": "1", "loss": "0.5"}, {"iteration": "2", "loss": "0.25"}]


def test_update_mode_keeps_batchnorm_on_running_statistics():
    from torch import nn

    from vla_gen_bench.training.actor_critic import update_mode

    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.1))
    model.eval()
    update_mode(model)
    assert model.training and model[0].training and model[2].training
    assert not model[1].training  # rollouts sampled with the running statistics; updates score with them too


def test_continue_adapter_trains_the_warmup_adapter_from_the_warmup_policy(tmp_path):
    """``continue_adapter``: the warm-up's own LoRA (saved next to its merged weights) is re-attached trainable on
    the un-merged base: same policy as the merged warm-up at iteration 0, the adapter's values as the start."""
    import torch

    from vla_gen_bench.models.checkpoint import load_openvla, save_checkpoint
    from vla_gen_bench.models.lora import attach_lora, save_lora
    from vla_gen_bench.training.actor_critic import build_actor_critic, score
    from vla_gen_bench.training.rl_config import ModelConfig
    from vla_gen_bench.training.rollouts import RolloutPolicy

    vla = load_openvla(micro_ckpt(), device="cpu", dtype="float32")
    vla.model = attach_lora(vla.model, r=4)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for n, p in vla.model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    warm = save_checkpoint(vla, tmp_path / "warmup")  # merged, as SFT writes final/
    save_lora(vla.model, warm / "adapter")
    trained = {n: p.detach().clone() for n, p in vla.model.named_parameters() if p.requires_grad}

    model = dict(init=warm, lora_r=8, device="cpu", dtype="float32")
    fresh = build_actor_critic(ModelConfig(**model))
    cont = build_actor_critic(ModelConfig(**model, continue_adapter=True))
    state = cont.trainable_state()["actor"]
    assert state.keys() == trained.keys()  # the warm-up's rank-4 adapter, not a fresh rank-8 one
    assert all(torch.equal(state[n], trained[n]) for n in trained)
    assert all(not p.any() for n, p in fresh.trainable_state()["actor"].items() if "lora_B" in n)
    imgs, ins = images(3), ["put red cube on plate"] * 3
    pol = RolloutPolicy(fresh, temperature=1.0, seed=0)
    pol.act_batch(imgs, ins)
    with torch.no_grad():
        a = score(fresh, imgs, ins, pol.records[0]["tokens"], 1.0, with_values=False)[0]
        b = score(cont, imgs, ins, pol.records[0]["tokens"], 1.0, with_values=False)[0]
    torch.testing.assert_close(b, a, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="before the warm-up"):
        cont.reference()
    with pytest.raises(FileNotFoundError, match="continue_adapter = false"):
        build_actor_critic(
            ModelConfig(init=micro_ckpt(), device="cpu", dtype="float32", continue_adapter=True)
        )


def test_a_ppo_checkpoint_brings_its_value_head_back(tmp_path):
    """Training a PPO checkpoint further starts from its own critic (value_head.safetensors), not a random one;
    other widths are refused with the fix; value_head_init = false gives a fresh head."""
    import torch

    from vla_gen_bench.training.actor_critic import build_actor_critic, export_policy
    from vla_gen_bench.training.rl_config import ModelConfig

    ac = micro_ac(seed=3)
    with torch.no_grad():
        for p in ac.value_head.parameters():
            p.add_(torch.randn_like(p))
    out = export_policy(ac, tmp_path / "policy")
    trained = {k: v.clone() for k, v in ac.value_head.state_dict().items()}
    model = dict(init=out, lora_r=4, device="cpu", dtype="float32")

    again = build_actor_critic(ModelConfig(**model)).value_head.state_dict()
    assert all(torch.equal(again[k], trained[k]) for k in trained)
    fresh = build_actor_critic(ModelConfig(**model, value_head_init=False)).value_head.state_dict()
    assert not all(torch.equal(fresh[k], trained[k]) for k in trained)
    with pytest.raises(ValueError, match="value_widths"):
        build_actor_critic(ModelConfig(**model, value_widths=(64,)))


def test_rl_exports_whole_chunk_decisions_from_a_receding_horizon_init(tmp_path, capsys):
    """An init whose recipe executes part of each chunk (vgb.execute) is trained by RL on whole-chunk decisions, so
    the exported policy runs whole chunks: evaluation runs what RL trained."""
    import json
    import shutil

    from vla_gen_bench.policies.openvla import OpenVLAPolicy
    from vla_gen_bench.training.actor_critic import build_actor_critic, export_policy
    from vla_gen_bench.training.rl_config import ModelConfig

    init = tmp_path / "init"
    shutil.copytree(micro_ckpt(), init)
    cfg = json.loads((init / "config.json").read_text())
    cfg.setdefault("vgb", {}).update(action_chunk=3, execute=1)
    (init / "config.json").write_text(json.dumps(cfg))
    ac = build_actor_critic(ModelConfig(init=init, lora_r=4, device="cpu", dtype="float32"))
    assert "executes 1 of its 3-action chunks" in capsys.readouterr().err
    quiet = build_actor_critic(ModelConfig(init=init, lora_r=4, device="cpu", dtype="float32"), notes=False)
    assert quiet.vla.config.execute == 0 and "executes" not in capsys.readouterr().err  # rollout workers
    out = export_policy(ac, tmp_path / "policy")
    assert "execute" not in json.loads((out / "config.json").read_text())["vgb"]
    assert OpenVLAPolicy.from_path(out).spec.chunk == 3


def test_summarize_episodes_gives_the_evaluators_per_variant_rates(tmp_path):
    """RL evaluation's per-variant rates are the evaluation report's (eval/stats.py): hand-computed rates and
    Wilson intervals, each episode once, a torn last line skipped, variants in order of first appearance."""
    import json
    import math

    from vla_gen_bench.eval.records import EpisodeRecord
    from vla_gen_bench.training.rl_eval import summarize_episodes

    def line(variant, k, success, grasped):
        axis, split = ("in-distribution", "train") if variant == "ind" else ("semantics", "test")
        rec = EpisodeRecord(variant=variant, axis=axis, split=split, seed=0, episode=k, policy="openvla:x",
                            success=success, success_once=success, grasped=grasped,
                            failure="success" if success else "never_grasped", instruction="put it on the plate")  # fmt: skip
        return json.dumps(rec.to_dict(chain=False))

    rows = [line("unseen_objects", 0, False, True), line("ind", 0, True, True), line("ind", 1, True, True),
            line("ind", 2, False, False), line("ind", 1, True, True),  # a repeat: counted once
            line("ind", 3, True, True), line("unseen_objects", 1, False, False)]  # fmt: skip
    jsonl = tmp_path / "episodes.jsonl"
    jsonl.write_text("\n".join(rows) + "\n" + line("unseen_objects", 2, True, True))  # torn: no newline

    def wilson(s, n, z=1.959963984540054):
        centre, half = (s + z * z / 2) / (n + z * z), z * math.sqrt(s * (n - s) / n + z * z / 4) / (n + z * z)
        return centre - half, centre + half

    res = summarize_episodes(jsonl)
    assert list(res) == ["unseen_objects", "ind"]
    for variant, (s, n, grasps) in {"ind": (3, 4, 3), "unseen_objects": (0, 2, 1)}.items():
        lo, hi = wilson(s, n)
        assert res[variant] == pytest.approx(
            {"n": n, "successes": s, "rate": s / n, "ci_low": lo, "ci_high": hi, "grasp_rate": grasps / n}
        )


def test_one_loop_rolls_out_checkpoints_and_evaluates_for_every_algorithm():
    """PPO, GRPO and DPO bring their own learning step (an ``Algorithm``); only rl_loop.py rolls out, saves state
    and evaluates, and no RL module imports another module's private names."""
    import ast
    import importlib

    from vla_gen_bench.training import rl_loop

    loop_calls = {"collect", "save_state", "evaluate_during_training", "training_items"}
    for name in ("ppo", "grpo", "dpo", "rl_loop", "rl_eval"):
        mod = importlib.import_module(f"vla_gen_bench.training.{name}")
        tree = ast.parse(Path(mod.__file__).read_text())
        private = [f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                   for a in n.names if a.name.startswith("_") and (n.module or "").startswith("vla_gen_bench")]  # fmt: skip
        assert not private, (name, private)
        calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
        called = {getattr(f, "attr", getattr(f, "id", None)) for f in calls}
        if name in ("ppo", "grpo", "dpo"):
            assert not called & loop_calls, (name, called & loop_calls)
            algo = getattr(mod, name.upper())
            assert isinstance(algo, rl_loop.Algorithm) and algo.name == name and algo.learn is mod.learn
    assert [importlib.import_module(f"vla_gen_bench.training.{a}").__dict__[a.upper()].critic
            for a in ("ppo", "grpo", "dpo")] == [True, False, False]  # fmt: skip
