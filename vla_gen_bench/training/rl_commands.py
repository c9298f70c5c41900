"""``vgb train-baseline ppo|grpo|dpo``: tyro dataclasses and handlers (the CLI only parses and dispatches).

A run's settings come from the recipe ``baselines/<algo>_<preset>.toml`` (its ``[config]`` table, overridden by the
named hyper-parameter set ``[hparams.<name>]``), then from the options given here, then from ``--set key=value``
(nested keys with dots: ``--set rollout.workers=1 --set gamma=0.96``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro


@dataclass(frozen=True)
class _TrainRL:
    preset: str = "tiny"
    """Recipe preset: tiny (CPU) or openvla-7b (one GPU); reads baselines/<algo>_<preset>.toml."""
    hparams: str | None = None
    """Named hyper-parameter set in the recipe (ppo: released | paper); default: the recipe's default_hparams."""
    init: Path | None = None
    """Warm-up checkpoint (HF OpenVLA folder); default: the recipe's (e.g. runs/baselines/sft-tiny/final)."""
    out: Path | None = None
    """Run directory; default: the recipe's. Re-running the same command resumes it."""
    iterations: int | None = None
    """Override the recipe's number of iterations."""
    workers: int | None = None
    """Override the number of CPU rollout worker processes."""
    set: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Further overrides as key=value (nested with dots), e.g. --set gamma=0.96 --set eval.episodes=32."""
    dry_run: bool = False
    """Print the resolved configuration and exit."""


@dataclass(frozen=True)
class TrainPPO(_TrainRL):
    """PPO fine-tuning of OpenVLA (RL4VLA recipe: shared critic, GAE, clipped surrogate, LoRA) from an SFT warm-up."""


@dataclass(frozen=True)
class TrainGRPO(_TrainRL):
    """GRPO fine-tuning of OpenVLA (group-normalised returns per initial configuration; no critic)."""


@dataclass(frozen=True)
class TrainDPO(_TrainRL):
    """Online trajectory DPO (TPO) of OpenVLA: preference pairs from rewards, LoRA-off reference."""


def resolve_config(algo: str, cmd: _TrainRL):
    """The algorithm's config dataclass from recipe + command options + ``--set`` overrides."""
    from vla_gen_bench.training.rl_common import _deep_merge, from_dict, load_recipe, parse_overrides

    cls = _config_class(algo)
    data = load_recipe(algo, cmd.preset, cmd.hparams)
    direct: dict = {}
    if cmd.init is not None:
        direct.setdefault("model", {})["init"] = str(cmd.init)
    if cmd.out is not None:
        direct["out"] = str(cmd.out)
    if cmd.iterations is not None:
        direct["iterations"] = cmd.iterations
    if cmd.workers is not None:
        direct.setdefault("rollout", {})["workers"] = cmd.workers
    data = _deep_merge(_deep_merge(data, direct), parse_overrides(cmd.set))
    return from_dict(cls, data)


def _config_class(algo: str):
    if algo == "ppo":
        from vla_gen_bench.training.ppo import PPOConfig

        return PPOConfig
    if algo == "grpo":
        from vla_gen_bench.training.grpo import GRPOConfig

        return GRPOConfig
    if algo == "dpo":
        from vla_gen_bench.training.dpo import DPOConfig

        return DPOConfig
    raise ValueError(f"unknown RL algorithm {algo!r}; allowed: ppo, grpo, dpo")


def _run(algo: str, cmd: _TrainRL) -> int:
    import importlib
    import json

    from rich.console import Console

    from vla_gen_bench.training.rl_common import to_jsonable
    from vla_gen_bench.variants import TrainingPoolError

    console = Console(stderr=True, soft_wrap=True)
    try:
        cfg = resolve_config(algo, cmd)
    except (FileNotFoundError, ValueError, TypeError) as e:
        console.print(f"[red]error:[/] {e}")
        return 2
    if cmd.dry_run:
        print(json.dumps(to_jsonable(cfg), indent=1))
        return 0
    if cfg.model.init is None or not Path(cfg.model.init).is_dir():
        console.print(f"[red]error:[/] warm-up checkpoint {cfg.model.init} not found; train one with "
                      f"'vgb train-baseline sft --preset {cmd.preset}' or pass --init DIR")  # fmt: skip
        return 2
    train = importlib.import_module(f"vla_gen_bench.training.{algo}").train
    try:
        out = train(cfg, console=console)
    except (TrainingPoolError, ValueError) as e:
        console.print(f"[red]refused:[/] {e}")
        return 2
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted; re-run the same command to resume from {cfg.out / 'state.pt'}")
        return 130
    console.print(f"run directory: {out}")
    return 0


def train_ppo(cmd: TrainPPO) -> int:
    """Handler of ``vgb train-baseline ppo``."""
    return _run("ppo", cmd)


def train_grpo(cmd: TrainGRPO) -> int:
    """Handler of ``vgb train-baseline grpo``."""
    return _run("grpo", cmd)


def train_dpo(cmd: TrainDPO) -> int:
    """Handler of ``vgb train-baseline dpo``."""
    return _run("dpo", cmd)
