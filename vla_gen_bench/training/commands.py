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
from typing import Annotated, Any, Literal

import tyro

from vla_gen_bench.options import PolicyOptions
from vla_gen_bench.recipes import RecipeCommand
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
@dataclass(frozen=True)
class DaggerConfig:
    """DAgger rounds after the first SFT (the recipe's [dagger] table; Ross et al. 2011): each round runs the latest
    checkpoint on new training-pool episodes with the demonstrator labelling every state it visits
    ('vgb collect-demos --learner'), then trains the recipe again, from scratch, on the demonstrations plus every
    round's data so far."""

    rounds: int = 0
    """Rounds after the first SFT (0 = plain SFT). Round r writes <out>/dagger<r>/ (demos/ = its data, final/)."""
    episodes: int = 500
    """Learner episodes per round (every one is kept: the labels are the demonstrator's)."""
    seed: int = 1001
    """Manifest seed of round 1's episodes (round r uses seed + r - 1); not an evaluation seed, not the demos'."""
    learner_policy: PolicyOptions = field(default_factory=PolicyOptions)
    """Options of the learner while it collects (``temperature``: not given = greedy; the recipe samples at its
    evaluation temperature)."""
    first_learner: Path | None = None
    """Use this checkpoint as the first SFT's result instead of training it (e.g. the bundled
    baselines/checkpoints/sft-tiny, trained by this recipe's first stage); recorded in DONE."""


def _default_sft() -> SFTConfig:
    return SFTConfig(demos=Path("data/demos"), out=Path("runs/baselines/sft-tiny"))


@dataclass(frozen=True)
class TrainSFT(RecipeCommand):
    """Train the SFT baseline of a preset from its recipe (vla_gen_bench/recipes/sft_<preset>.toml): collect the
    demos it needs (resumable), fine-tune, evaluate, and write <out>/final (+ <out>/DONE when finished)."""

    preset: Literal["tiny", "openvla-7b"] = "tiny"
    """Recipe preset: tiny (CPU) or openvla-7b (GPU; needs the checkpoint folder named in the recipe or --init).
    The defaults shown below are the recipe's."""
    warmup: bool = False
    """Use the warm-up recipe instead (RL4VLA's 140-trajectory warm-up: recipes/warmup_<preset>.toml)."""
    family: str = "put_on"
    """Task family (``vgb list``): put_on uses sft_<preset>.toml, another family its own recipe
    sft_<preset>_<family>.toml (its oracle's demonstrations on its control arm, evaluated there)."""
    recipe: Path | None = None
    """An explicit recipe TOML file (overrides --preset / --warmup / --family)."""
    sft: Annotated[SFTConfig, tyro.conf.arg(name="")] = field(default_factory=_default_sft)
    collect: DemoConfig = DemoConfig()
    """The demonstrations to collect (the recipe's [demos] table); at least --num-demos episodes."""
    dagger: DaggerConfig = DaggerConfig()
    """DAgger rounds after the first SFT (the recipe's [dagger] table)."""
    name: tyro.conf.Suppress[str] = "sft_tiny"
    """The recipe's name (recorded in config.json)."""
    recipe_file: tyro.conf.Suppress[str] = ""

    PICK = ("preset", "warmup", "family", "recipe")

    @classmethod
    def from_picked(cls, picked: dict[str, Any], **rest) -> TrainSFT:
        """The command with the recipe ``picked`` names (``--recipe`` file, else ``--warmup`` / ``--preset``).

        Raises:
            FileNotFoundError: no recipe; ValueError: unknown keys in it (did-you-mean).
        """
        from vla_gen_bench import recipes

        preset, warmup = picked.get("preset") or "tiny", bool(picked.get("warmup"))
        family = picked.get("family") or "put_on"
        if picked.get("recipe"):
            where = str(picked["recipe"])
            raw = recipes.read_file(Path(where))
        else:
            from vla_gen_bench.families import get_family

            get_family(family)  # an unknown family: did-you-mean and the allowed names
            if family != "put_on" and warmup:
                raise ValueError(
                    f"--warmup is RL4VLA's put_on warm-up; the {family!r} family has no warm-up recipe"
                )
            recipe_preset = preset if family == "put_on" else f"{preset}_{family}"
            where = f"{'warmup' if warmup else 'sft'}_{recipe_preset}.toml"
            raw = recipes.read("warmup" if warmup else "sft", recipe_preset)
        unknown = set(raw) - {"name", "description", "demos", "sft", "dagger"}
        if unknown:
            raise ValueError(
                f"{where}: unknown sections {sorted(unknown)}; allowed: name, description, demos, sft, dagger"
            )
        name = raw.get("name", Path(where).stem)
        d = dict(raw.get("demos", {}))
        d.setdefault("out", "data/demos")
        collect = recipes.build(DemoConfig, d, where=f"{where} [demos] ")
        s = dict(raw.get("sft", {}))
        s.setdefault("out", f"runs/baselines/{name.replace('_', '-')}")
        if "demos" in s or "extra" in s:
            raise ValueError(f"{where}: [sft] demos / extra are set by the command, not the recipe")
        sft = recipes.build(SFTConfig, {"demos": str(collect.out), **s}, where=f"{where} [sft] ")
        dagger = recipes.build(DaggerConfig, dict(raw.get("dagger", {})), where=f"{where} [dagger] ")
        return cls(preset=preset, warmup=warmup, family=family, recipe=picked.get("recipe"), sft=sft,
                   collect=collect, dagger=dagger, name=name, recipe_file=where, **rest)  # fmt: skip


def build_configs(cfg: TrainSFT):
    """(recipe name, DemoConfig, SFTConfig) for a parsed TrainSFT command: the SFT trains on the collected
    demonstrations (at least --num-demos episodes are attempted), evaluated with their camera."""
    demo, sft = cfg.collect, cfg.sft
    if sft.num_demos is not None and sft.num_demos > demo.episodes:
        demo = replace(demo, episodes=sft.num_demos)
    extra = {**sft.extra, "recipe": cfg.recipe_file, "recipe_name": cfg.name}
    sft = replace(sft, demos=demo.out, out=Path(sft.out), extra=extra, eval_camera=demo.camera)
    return cfg.name, demo, sft


def check_dagger(dagger: DaggerConfig, demo: DemoConfig) -> None:
    """Refuse DAgger options that cannot work before anything is collected or trained."""
    if dagger.rounds < 0:
        raise ValueError(f"--dagger.rounds must be >= 0, got {dagger.rounds}")
    if dagger.first_learner is not None and dagger.rounds < 1:
        raise ValueError("--dagger.first-learner replaces the first SFT of a DAgger run; add --dagger.rounds 1 "
                         "(or more), or drop --dagger.first-learner for plain SFT")  # fmt: skip
    if dagger.first_learner is not None:
        from vla_gen_bench.recipes import checkpoint

        try:
            folder = checkpoint(dagger.first_learner)
        except FileNotFoundError as e:
            raise ValueError(f"--dagger.first-learner: {e}") from None
        if not (folder / "config.json").is_file():
            raise ValueError(f"--dagger.first-learner {dagger.first_learner}: not an OpenVLA checkpoint folder (no "
                             "config.json); pass e.g. bundled:sft-tiny or <run>/final")  # fmt: skip
    if dagger.rounds and dagger.seed <= demo.seed < dagger.seed + dagger.rounds:
        raise ValueError(f"[dagger] seeds {dagger.seed}..{dagger.seed + dagger.rounds - 1} include the "
                         f"demonstrations' seed {demo.seed}; pick seeds above it (e.g. --dagger.seed {demo.seed + 1})")  # fmt: skip


def check_sft(sft: SFTConfig) -> None:
    """Refuse SFT options that ``train`` would only reject after the demonstrations are collected."""
    if not 0 <= sft.execute <= sft.action_chunk:
        raise ValueError(
            f"--execute {sft.execute}: takes 0 (the whole chunk) to --action-chunk {sft.action_chunk}"
        )
    if sft.extra_until_close is not None and sft.extra_until_close < 0:
        raise ValueError(f"--extra-until-close {sft.extra_until_close}: must be >= 0 (steps kept after the first "
                         "close label), or None for every step")  # fmt: skip


def dagger_round(dagger: DaggerConfig, demo: DemoConfig, out: Path, r: int, learner: Path) -> DemoConfig:
    """The collection of DAgger round ``r``: the recipe's demonstrator, camera and filter, the learner acting."""
    return replace(demo, out=Path(out) / f"dagger{r}" / "demos", seed=dagger.seed + r - 1, episodes=dagger.episodes,
                   learner=Path(learner), learner_policy=dagger.learner_policy, noise_xyz=0.0, noise_yaw=0.0,
                   noise_gripper=0.0)  # fmt: skip


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
        check_dagger(cfg.dagger, demo)
        check_sft(sft)
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
        if cfg.dagger.first_learner is not None:
            from vla_gen_bench.recipes import checkpoint

            final = checkpoint(cfg.dagger.first_learner)
            console.print(f"first SFT not trained: DAgger starts from {final} (--dagger.first-learner)")
        else:
            final = train(sft, progress=True)
        train_s = time.perf_counter() - t_train
        rounds, round_sft = [], sft
        for r in range(1, cfg.dagger.rounds + 1):
            t_r = time.perf_counter()
            dcfg = dagger_round(cfg.dagger, demo, out, r, final)
            console.print(f"DAgger round {r}: the learner {final} collects -> {dcfg.out}")
            dcard = collect(dcfg)
            round_sft = replace(sft, out=out / f"dagger{r}", extra_demos=(*round_sft.extra_demos, dcfg.out))
            c_s = time.perf_counter() - t_r
            final = train(round_sft, progress=True)
            rounds.append({"round": r, "learner": str(dcfg.learner), "data": str(dcfg.out),
                           "episodes": dcard["episodes_kept"], "steps_kept": dcard["steps_kept"],
                           "learner_success_rate": dcard.get("learner_success_rate"), "final": str(final),
                           "collect_wall_s": round(c_s, 1),
                           "train_wall_s": round(time.perf_counter() - t_r - c_s, 1)})  # fmt: skip
    except (TrainingPoolError, DemoConfigError, VariantError, FileNotFoundError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    data = DemoDataset(sft.demos, max_episodes=sft.num_demos)
    summary = {"recipe": name, "final": str(final), "demos_episodes": data.num_episodes, "demos_steps": len(data),
               "collect_wall_s": round(collect_s, 1), "train_wall_s": round(train_s, 1),
               "total_wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    if rounds:
        summary["dagger"] = {"first_learner": str(cfg.dagger.first_learner) if cfg.dagger.first_learner else None,
                             "rounds": rounds}  # fmt: skip
        for x in rounds:  # each round's run folder: its own cost, for cards bundled from it
            (out / f"dagger{x['round']}" / "DONE").write_text(json.dumps({"recipe": name, "round_of": str(out), **x},
                                                                         indent=2) + "\n")  # fmt: skip
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
