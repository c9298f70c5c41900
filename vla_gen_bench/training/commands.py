"""``vgb collect-demos`` and ``vgb train-baseline sft``: config dataclasses (tyro) and their handlers.

The CLI only parses and dispatches. Recipes (which model, how many demos, learning rate, budget) are TOML files in
the package, ``vla_gen_bench/recipes/{sft,warmup}_<preset>.toml``; ``TrainSFT.from_recipe`` turns one into the
command's default instance and tyro parses the options over it, so a baseline is reproduced by one command and any
field is changed by naming it (see ``baselines/README.md``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import tyro

from vla_gen_bench.training.demos import DemoConfig
from vla_gen_bench.training.sft import SFTConfig


# ---------------------------------------------------------------------------------------------- collect-demos
@dataclass(frozen=True)
class CollectDemos(DemoConfig):
    """Collect scripted-oracle demonstrations on training pools (successful episodes only); resumable."""


def collect_demos(cfg: CollectDemos) -> int:
    """Handler of ``vgb collect-demos``. Returns the exit code."""
    from rich.console import Console

    from vla_gen_bench.training.demos import DemoConfigError, collect
    from vla_gen_bench.variants import TrainingPoolError, VariantError

    console = Console(stderr=True, soft_wrap=True)
    try:
        card = collect(cfg)
    except (TrainingPoolError, DemoConfigError, VariantError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    s = card.get("session", {})
    console.print(
        f"{card['episodes_kept']} episodes kept ({card['episodes_failed']} failed; planner success "
        f"{card['planner_success_rate']}), {card['steps_kept']}/{card['steps_total']} steps after the idle filter; "
        f"this session {s.get('attempted_now')} episodes in {s.get('wall_s')} s ({s.get('episodes_per_min')}/min)"
    )
    console.print(f"wrote {cfg.out} (dataset.json, dataset_statistics.json, README.md, episodes/)")
    print(cfg.out)
    return 0


# ---------------------------------------------------------------------------------------------- train-baseline sft
_PREPARSE = {"preset": "value", "warmup": "flag", "recipe": "value", "set": "append"}


def _default_sft() -> SFTConfig:
    return SFTConfig(demos=Path("data/demos"), out=Path("runs/baselines/sft-tiny"))


@dataclass(frozen=True)
class TrainSFT:
    """Train the SFT baseline of a preset from its recipe (vla_gen_bench/recipes/sft_<preset>.toml): collect the
    demos it needs (resumable), fine-tune, evaluate, and write <out>/final (+ <out>/DONE when finished)."""

    preset: Literal["tiny", "openvla-7b"] = "tiny"
    """Recipe preset: tiny (CPU) or openvla-7b (GPU; needs the checkpoint folder named in the recipe or --init).
    The defaults shown below are the recipe's."""
    warmup: bool = False
    """Use the warm-up recipe instead (RL4VLA's 140-trajectory warm-up: recipes/warmup_<preset>.toml)."""
    recipe: Path | None = None
    """An explicit recipe TOML file (overrides --preset / --warmup)."""
    demos: int | None = None
    """Demonstrations to use (episodes; collected if missing): sets --num-demos and raises --collect.episodes."""
    data: Path | None = None
    """Shortcut for --collect.out (the demonstration folder)."""
    workers: int | None = None
    """Shortcut for --collect.workers (simulator processes for collection)."""
    set: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Deprecated (use --key value): any SFT field as key=value (JSON values), e.g. --set label_sigma=0."""
    sft: Annotated[SFTConfig, tyro.conf.arg(name="")] = field(default_factory=_default_sft)
    collect: DemoConfig = DemoConfig()
    """The demonstrations to collect (the recipe's [demos] table)."""
    name: tyro.conf.Suppress[str] = "sft_tiny"
    """The recipe's name (recorded in config.json)."""
    recipe_file: tyro.conf.Suppress[str] = ""

    @classmethod
    def from_recipe(cls, args: list[str] | None = None, **options) -> TrainSFT:
        """The command with the recipe its ``args`` (or ``options``) name as defaults: tyro's ``default=``.

        Raises:
            FileNotFoundError: no recipe; ValueError: unknown keys in it or in --set (did-you-mean).
        """
        from vla_gen_bench import recipes

        picked = recipes.preparse(list(args or []), _PREPARSE)
        picked = {**{k: v for k, v in picked.items() if v not in (None, [])}, **options}
        preset, warmup = picked.get("preset") or "tiny", bool(picked.get("warmup"))
        if picked.get("recipe"):
            where = str(picked["recipe"])
            raw = recipes.read_file(Path(where))
        else:
            where = f"{'warmup' if warmup else 'sft'}_{preset}.toml"
            raw = recipes.read("warmup" if warmup else "sft", preset)
        unknown = set(raw) - {"name", "description", "demos", "sft"}
        if unknown:
            raise ValueError(
                f"{where}: unknown sections {sorted(unknown)}; allowed: name, description, demos, sft"
            )
        name = raw.get("name", Path(where).stem)
        d = dict(raw.get("demos", {}))
        d.setdefault("out", "data/demos")
        collect = recipes.build(DemoConfig, d, where=f"{where} [demos] ")
        s = dict(raw.get("sft", {}))
        s.setdefault("out", f"runs/baselines/{name.replace('_', '-')}")
        sets = tuple(picked.get("set") or ())
        s = recipes.merge(s, recipes.overrides(sets))
        if "demos" in s or "extra" in s:
            raise ValueError(f"{where}: [sft] demos / extra are set by the command, not the recipe")
        sft = recipes.build(SFTConfig, {"demos": str(collect.out), **s}, where=f"{where} [sft] ")
        rest = {k: v for k, v in options.items() if k not in ("preset", "warmup", "recipe", "set")}
        return cls(preset=preset, warmup=warmup, recipe=picked.get("recipe"), set=sets, sft=sft, collect=collect,
                   name=name, recipe_file=where, **rest)  # fmt: skip


def build_configs(cfg: TrainSFT):
    """(recipe name, DemoConfig, SFTConfig) for a parsed TrainSFT command, with its shortcuts applied."""
    demo, sft = cfg.collect, cfg.sft
    if cfg.data is not None:
        demo = replace(demo, out=cfg.data)
    if cfg.workers is not None:
        demo = replace(demo, workers=cfg.workers)
    if cfg.demos is not None:
        demo = replace(demo, episodes=max(demo.episodes, cfg.demos))
        sft = replace(sft, num_demos=cfg.demos)
    extra = {**sft.extra, "recipe": cfg.recipe_file, "recipe_name": cfg.name}
    sft = replace(sft, demos=demo.out, out=Path(sft.out), extra=extra, eval_camera=demo.camera)
    return cfg.name, demo, sft


def train_sft(cfg: TrainSFT) -> int:
    """Handler of ``vgb train-baseline sft``. Returns the exit code."""
    from rich.console import Console

    from vla_gen_bench.training.dataset import DemoDataset
    from vla_gen_bench.training.demos import DemoConfigError, collect
    from vla_gen_bench.training.sft import train
    from vla_gen_bench.variants import TrainingPoolError, VariantError

    console = Console(stderr=True, soft_wrap=True)
    t0 = time.perf_counter()
    try:
        name, demo, sft = build_configs(cfg)
        out = Path(sft.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "DONE").unlink(missing_ok=True)
        (out / "command.json").write_text(json.dumps({"command": "train-baseline sft", **asdict(cfg)}, indent=2,
                                                     default=str) + "\n")  # fmt: skip
        console.print(f"recipe {name}: demos -> {demo.out}, run -> {out}")
        t_collect = time.perf_counter()
        card = collect(demo)
        collect_s = time.perf_counter() - t_collect
        kept = card["episodes_kept"]
        if sft.num_demos is not None and sft.num_demos > kept:
            console.print(f"[yellow]only {kept} successful demos; training on all of them[/yellow]")
            sft = replace(sft, num_demos=kept)
        t_train = time.perf_counter()
        final = train(sft, progress=True)
        train_s = time.perf_counter() - t_train
    except (TrainingPoolError, DemoConfigError, VariantError, FileNotFoundError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    data = DemoDataset(sft.demos, max_episodes=sft.num_demos)
    summary = {"recipe": name, "final": str(final), "demos_episodes": data.num_episodes, "demos_steps": len(data),
               "collect_wall_s": round(collect_s, 1), "train_wall_s": round(train_s, 1),
               "total_wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    evals = out / "eval.csv"
    if evals.is_file():
        import csv

        rows = list(csv.DictReader(open(evals)))
        if rows:
            summary["last_eval"] = rows[-1]
    (out / "DONE").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"wrote {final} (evaluate: vgb evaluate --policy openvla:{final} --suite ind --camera "
                  f"{sft.eval_camera} ...); {out / 'DONE'}")  # fmt: skip
    print(final)
    return 0
