"""``vgb train-baseline ppo|grpo|dpo``: tyro dataclasses and handlers (the CLI only parses and dispatches).

A run's settings are the algorithm's config dataclass whose default instance is the recipe
``vla_gen_bench/recipes/<algo>_<preset>.toml`` (its ``[config]`` table overridden by the named hyper-parameter set
``[hparams.<name>]``); tyro parses every field on top of it: ``vgb train-baseline ppo --preset tiny --lr 1e-4
--rollout.workers 1 --hparams released``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import tyro

from vla_gen_bench.recipes import RecipeCommand
from vla_gen_bench.training.dpo import DPOConfig
from vla_gen_bench.training.grpo import GRPOConfig
from vla_gen_bench.training.ppo import PPOConfig


@dataclass(frozen=True)
class _TrainRL(RecipeCommand):
    preset: str = "tiny"
    """Recipe preset: tiny (CPU) or openvla-7b (one GPU); the defaults below are vla_gen_bench/recipes/<algo>_<preset>.toml
    (with --hparams picking its named hyper-parameter set)."""
    dry_run: bool = False
    """Print the resolved configuration and exit."""

    PICK = ("preset", "hparams")

    @classmethod
    def from_picked(cls, picked: dict[str, Any], **rest):
        """The command with the recipe of ``picked["preset"]`` and its hyper-parameter set ``picked["hparams"]``."""
        from vla_gen_bench import recipes

        preset = picked.get("preset") or "tiny"
        raw = recipes.read(cls.algo, preset)
        data = recipes.rl_settings(raw, picked.get("hparams"), where=f"{cls.algo}_{preset}.toml")
        config = recipes.build(type(cls.__dataclass_fields__["config"].default_factory()), data)
        return cls(config=config, preset=preset, **{k: v for k, v in rest.items() if k != "config"})


@dataclass(frozen=True)
class TrainPPO(_TrainRL):
    """PPO fine-tuning of OpenVLA (RL4VLA recipe: shared critic, GAE, clipped surrogate, LoRA) from an SFT warm-up."""

    config: Annotated[PPOConfig, tyro.conf.arg(name="")] = field(default_factory=PPOConfig)
    algo = "ppo"


@dataclass(frozen=True)
class TrainGRPO(_TrainRL):
    """GRPO fine-tuning of OpenVLA (group-normalised returns per initial configuration; no critic)."""

    config: Annotated[GRPOConfig, tyro.conf.arg(name="")] = field(default_factory=GRPOConfig)
    algo = "grpo"


@dataclass(frozen=True)
class TrainDPO(_TrainRL):
    """Online trajectory DPO (TPO) of OpenVLA: preference pairs from rewards, LoRA-off reference."""

    config: Annotated[DPOConfig, tyro.conf.arg(name="")] = field(default_factory=DPOConfig)
    algo = "dpo"


COMMANDS = {"ppo": TrainPPO, "grpo": TrainGRPO, "dpo": TrainDPO}


def resolve_config(algo: str, cmd: _TrainRL | None = None, **options):
    """The algorithm's config: ``cmd`` as parsed by the CLI, or the recipe with ``options`` applied
    (``resolve_config("ppo", preset="tiny", hparams="released", gamma=0.5, rollout={"workers": 1})``).

    Raises:
        FileNotFoundError: no recipe for the preset; ValueError: an unknown setting or hyper-parameter set.
    """
    if algo not in COMMANDS:
        raise ValueError(f"unknown RL algorithm {algo!r}; allowed: {', '.join(COMMANDS)}")
    if cmd is None:
        cls = COMMANDS[algo]
        own = set(cls.__dataclass_fields__) | set(cls.PICK)
        cmd = cls.from_recipe(**{k: v for k, v in options.items() if k in own})
        extra = {k: v for k, v in options.items() if k not in own}
        if extra:
            from vla_gen_bench import recipes

            cmd = replace(cmd, config=recipes.build(type(cmd.config), extra, base=cmd.config))
    return cmd.config


def _run(algo: str, cmd: _TrainRL) -> int:
    import importlib
    import json

    from rich.console import Console

    from vla_gen_bench import recipes
    from vla_gen_bench.models.checkpoint import checkpoint_fingerprint
    from vla_gen_bench.training.run_dir import to_jsonable
    from vla_gen_bench.variants import TrainingPoolError

    console = Console(stderr=True, soft_wrap=True)
    cfg = cmd.config
    if cmd.dry_run:
        print(json.dumps(to_jsonable(cfg), indent=1))
        return 0
    try:  # RL samples its rollouts: refused before anything loads when the recipe gives no temperature
        _ = cfg.rollout.temperature
    except ValueError as e:
        console.print(f"refused: {e}", style="red", markup=False)
        return 2
    try:  # bundled:<name> (a reference checkpoint shipped with the package) or a folder
        init = recipes.checkpoint(cfg.model.init) if cfg.model.init is not None else None
    except FileNotFoundError as e:
        console.print(f"[red]error:[/] {e}")
        return 2
    if init is None or not init.is_dir():
        at = f" at {init.absolute()}" if init is not None else ""
        console.print(f"[red]error:[/] warm-up checkpoint {cfg.model.init} not found{at}; train one with "
                      f"'vgb train-baseline sft --preset {cmd.preset}' or pass --model.init DIR")  # fmt: skip
        return 2
    train = importlib.import_module(f"vla_gen_bench.training.{algo}").train
    try:
        sha = checkpoint_fingerprint(init)  # provenance: which weights the run starts from
        console.print(f"model.init {cfg.model.init}: {init} (checkpoint_sha256 {sha})")
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
