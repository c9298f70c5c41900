"""``vgb collect-demos`` and ``vgb train-baseline sft``: config dataclasses (tyro) and their handlers.

The CLI only parses and dispatches; recipes (which model, how many demos, learning rate, budget) live as TOML in
``baselines/`` so a baseline is reproduced by one command (see ``baselines/README.md``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import tomllib
import tyro

from vla_gen_bench.options import parse_key_values
from vla_gen_bench.training.demos import IdleFilter


# ---------------------------------------------------------------------------------------------- collect-demos
@dataclass(frozen=True)
class CollectDemos:
    """Collect scripted-oracle demonstrations on training pools (successful episodes only); resumable."""

    episodes: int = 300
    """Episodes to attempt: indices 0..N-1 of the training manifest of --variant / --seed."""
    out: Path = Path("data/demos")
    """Dataset folder; re-running the same command resumes it."""
    workers: int = 2
    """Simulator processes (each pays a ~10 s render-pipeline compile)."""
    variant: str = "ind"
    """Variant whose manifest gives the initial configurations; anything touching a test pool is refused."""
    seed: int = 1000
    """Manifest seed (must differ from the evaluation seeds 0-2)."""
    camera: Literal["default", "fast", "paper"] = "fast"
    """Policy-camera profile: store the images the policy sees at evaluation (fast = 128², default = 224²)."""
    camera_size: tuple[int, int] | None = None
    """Override the camera's (width, height)."""
    filter: IdleFilter = IdleFilter()
    """Idle-action filter (RL4VLA's thresholds); stored as a per-step keep mask, raw steps stay on disk."""
    key: str = "vgb_demos"
    """Dataset key in dataset_statistics.json (becomes the checkpoint's unnorm_key)."""
    oracle: Literal["scripted", "scripted-smooth"] = "scripted"
    """Demonstrator: the waypoint oracle, or its proportional funnel-shaped version (easier to imitate)."""
    noise_xyz: float = 0.0
    """DART noise (m std) on the executed translation while reaching/carrying; the stored action stays clean."""
    noise_yaw: float = 0.0
    """DART noise (rad std) on the executed yaw."""
    noise_gripper: float = 0.0
    """Probability per reaching step of closing the gripper on nothing for 2 steps (the label stays open)."""


def _demo_config(cfg: CollectDemos):
    from vla_gen_bench.training.demos import DemoConfig

    return DemoConfig(episodes=cfg.episodes, out=cfg.out, workers=cfg.workers, variant=cfg.variant, seed=cfg.seed,
                      camera=cfg.camera, camera_size=cfg.camera_size, filter=cfg.filter, key=cfg.key,
                      oracle=cfg.oracle, noise_xyz=cfg.noise_xyz, noise_yaw=cfg.noise_yaw,
                      noise_gripper=cfg.noise_gripper)  # fmt: skip


def collect_demos(cfg: CollectDemos) -> int:
    """Handler of ``vgb collect-demos``. Returns the exit code."""
    from rich.console import Console

    from vla_gen_bench.training.demos import DemoConfigError, collect
    from vla_gen_bench.variants import TrainingPoolError, VariantError

    console = Console(stderr=True, soft_wrap=True)
    try:
        card = collect(_demo_config(cfg))
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
class TrainSFT:
    """Train the SFT baseline of a preset from its recipe (baselines/sft_<preset>.toml): collect the demos it needs
    (resumable), fine-tune, evaluate, and write <out>/final (+ <out>/DONE when finished)."""

    preset: Literal["tiny", "openvla-7b"] = "tiny"
    """Recipe preset: tiny (CPU) or openvla-7b (GPU; needs the checkpoint folder named in the recipe or --init)."""
    demos: int | None = None
    """Demonstrations to use (episodes; collected if missing); default: the recipe's."""
    warmup: bool = False
    """Use the warm-up recipe instead (RL4VLA's 140-trajectory warm-up: baselines/warmup_<preset>.toml)."""
    recipe: Path | None = None
    """An explicit recipe TOML (overrides --preset / --warmup)."""
    out: Path | None = None
    """Run directory; default: the recipe's (runs/baselines/sft-<preset>). Re-running resumes it."""
    data: Path | None = None
    """Demonstration folder; default: the recipe's."""
    init: str | None = None
    """Override the recipe's starting point (a model preset or a checkpoint folder)."""
    workers: int | None = None
    """Simulator processes for collection; default: the recipe's."""
    time_budget_min: float | None = None
    """Override the recipe's training time budget (minutes)."""
    max_steps: int | None = None
    """Override the recipe's optimizer steps."""
    eval_episodes: int | None = None
    """Override the recipe's final in-training evaluation size (0 = skip)."""
    device: str | None = None
    """Override the training device (auto, cpu, cuda:0)."""
    set: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Any other SFT field as key=value (JSON values), e.g. --set lr=3e-4 --set label_sigma=0."""


def recipe_path(preset: str, warmup: bool = False) -> Path:
    """``baselines/{sft|warmup}_<preset>.toml`` (``openvla-7b`` -> ``openvla7b``)."""
    from vla_gen_bench.paths import repo_root

    name = f"{'warmup' if warmup else 'sft'}_{preset.replace('-', '')}.toml"
    path = repo_root() / "baselines" / name
    if not path.is_file():
        raise FileNotFoundError(f"no recipe {path}; available: "
                                f"{', '.join(p.name for p in sorted(path.parent.glob('*.toml')))}")  # fmt: skip
    return path


def load_recipe(path: Path) -> dict[str, Any]:
    """Read a recipe TOML: ``[demos]`` (CollectDemos fields, ``[demos.filter]``) and ``[sft]`` (SFTConfig fields)."""
    raw = tomllib.loads(Path(path).read_text())
    unknown = set(raw) - {"name", "description", "demos", "sft"}
    if unknown:
        raise ValueError(
            f"{path}: unknown sections {sorted(unknown)}; allowed: name, description, demos, sft"
        )
    return raw


def build_configs(cfg: TrainSFT):
    """(recipe name, DemoConfig, SFTConfig) for a TrainSFT command, with the command's overrides applied."""
    from vla_gen_bench.training.demos import DemoConfig
    from vla_gen_bench.training.sft import SFTConfig

    path = cfg.recipe or recipe_path(cfg.preset, cfg.warmup)
    raw = load_recipe(path)
    d = dict(raw.get("demos", {}))
    filt = IdleFilter(**d.pop("filter", {}))
    _check_keys(d, DemoConfig, path, "demos")
    if "camera_size" in d:
        d["camera_size"] = tuple(d["camera_size"])
    demo = DemoConfig(**{**d, "out": Path(d.get("out", "data/demos")), "filter": filt})
    if cfg.data is not None:
        demo = replace(demo, out=cfg.data)
    if cfg.workers is not None:
        demo = replace(demo, workers=cfg.workers)
    s = dict(raw.get("sft", {}))
    _check_keys(s, SFTConfig, path, "sft")
    if "eval_seeds" in s:
        s["eval_seeds"] = tuple(s["eval_seeds"])
    name = raw.get("name", path.stem)
    s.setdefault("out", f"runs/baselines/{name.replace('_', '-')}")
    overrides = parse_key_values(cfg.set, "--set")
    _check_keys(overrides, SFTConfig, "--set", "sft")
    s.update(overrides)
    for k in ("init", "time_budget_min", "max_steps", "eval_episodes", "device"):
        if getattr(cfg, k) is not None:
            s[k] = getattr(cfg, k)
    if cfg.out is not None:
        s["out"] = cfg.out
    if cfg.demos is not None:
        demo = replace(demo, episodes=max(demo.episodes, cfg.demos))
        s["num_demos"] = cfg.demos
    s["out"] = Path(s["out"])
    s["extra"] = {**s.get("extra", {}), "recipe": str(path), "recipe_name": name}
    sft = SFTConfig(demos=demo.out, **s)
    if sft.eval_camera != demo.camera:
        sft = replace(sft, eval_camera=demo.camera)
    return name, demo, sft


def _check_keys(d: dict, cls, where, section: str) -> None:
    allowed = {f.name for f in fields(cls)} - {"demos"} if section == "sft" else {f.name for f in fields(cls)}
    bad = sorted(set(d) - allowed)
    if bad:
        import difflib

        hints = [f"{b} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(b, allowed, n=1)) else b
                 for b in bad]  # fmt: skip
        raise ValueError(
            f"{where}: unknown [{section}] keys {', '.join(hints)}; allowed: {', '.join(sorted(allowed))}"
        )


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
