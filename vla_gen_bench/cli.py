"""``vgb``: the command line. Parsing and dispatch only; the work happens in the package's rooms.

vgb assets build [--force]          materialise + verify the built-in procedural asset pack
vgb assets list [--kind object]     every asset with its pool (train / unseen) and name
vgb render --out sheet.png          contact sheet: first frames of several seeds, with instructions
vgb run-episode --policy scripted --seed 0 --video out.mp4
"""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro
from rich.console import Console

from vla_gen_bench.cameras import CameraName

console = Console(stderr=True)


def _quiet_sim() -> None:
    # one torch thread per sim process: with 2 threads on a 2-vCPU VM small ops stall 3-10x
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging

    logging.getLogger("mani_skill").setLevel(logging.ERROR)


# ---------------------------------------------------------------------------- assets
@dataclass(frozen=True)
class AssetsBuild:
    """Build the procedural asset pack into the cache and verify every file against the manifest."""

    force: bool = False
    """Rebuild even if a pack is already there."""
    out: Path | None = None
    """Pack folder (default: the cache, $VGB_CACHE/assets/procedural_v1)."""


@dataclass(frozen=True)
class AssetsList:
    """List assets with id, kind, pool (train / unseen) and name."""

    kind: Literal["object", "receptacle", "table", "overlay"] | None = None
    pool: Annotated[Literal["train", "unseen"] | None, tyro.conf.arg(aliases=("--split",))] = None
    """Only the train or the unseen asset pool (``--split``: deprecated alias)."""


def assets_build(cfg: AssetsBuild) -> int:
    import shutil

    from vla_gen_bench.assets.store import PROCEDURAL_VERSION, AssetStore
    from vla_gen_bench.paths import cache_dir

    root = cfg.out or cache_dir() / "assets" / f"procedural_v{PROCEDURAL_VERSION}"
    if cfg.force:
        shutil.rmtree(root, ignore_errors=True)
    store = AssetStore.procedural(root)
    problems = store.verify()
    if problems:
        for p in problems:
            console.print(f"[red]{p}")
        console.print("[red]pack is corrupt; rebuild with 'vgb assets build --force'")
        return 1
    counts = {
        k: (len(store.ids(k, "train")), len(store.ids(k, "unseen")))
        for k in ("object", "receptacle", "table", "overlay")
    }
    for k, (tr, un) in counts.items():
        console.print(f"{k:11s} train {tr:3d}  unseen {un:3d}")
    console.print(f"pack hash {store.pack_hash} -> {root}")
    return 0


def assets_list(cfg: AssetsList) -> int:
    from vla_gen_bench.assets.store import default_store

    store = default_store()
    kinds = [cfg.kind] if cfg.kind else ["object", "receptacle", "table", "overlay"]
    for k in kinds:
        for i in store.ids(k, cfg.pool):
            e = store.entry(i)
            print(f"{e.kind:10s} {e.split:7s} {e.id:34s} {e.name}")
    return 0


# ---------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class List:
    """Suites and variants, grouped by task family: axis, split, severity, the paper setting each reproduces."""

    suite: str | None = None
    """Only the variants of this suite."""
    axis: Literal["in-distribution", "vision", "semantics", "execution"] | None = None
    family: str | None = None
    """Only the variants of this task family (put_on, push, ...)."""


@dataclass(frozen=True)
class Describe:
    """What a variant changes, its knobs, number of distinct configurations, first episodes, a preview image."""

    variant: tyro.conf.Positional[str]
    episodes: int = 3
    """Episodes of the manifest to print (seed --seed)."""
    seed: int = 0
    preview: Path | None = None
    """Render the first frames of these episodes into this PNG (creates an env, ~10 s)."""
    json: bool = False
    """Print the definition and episodes as JSON instead."""


@dataclass(frozen=True)
class Cards:
    """Write the markdown variant cards (tasks/*.md) from the catalog, or check they are current."""

    out: Path = Path("tasks")
    check: bool = False
    """Do not write; exit 1 listing the cards that are stale."""


def list_variants(cfg: List) -> int:
    from rich.table import Table

    from vla_gen_bench.families import FAMILIES, get_family
    from vla_gen_bench.variants import SUITES, VARIANTS, get_suite

    family = get_family(cfg.family).name if cfg.family else None
    chosen = get_suite(cfg.suite) if cfg.suite else VARIANTS
    out = Console(width=None if sys.stdout.isatty() else 200)
    for fam in FAMILIES.values():
        rows = [v for v in chosen if v.family == fam.name and (not cfg.axis or v.axis == cfg.axis)]
        if not rows or (family and fam.name != family):
            continue
        t = Table("variant", "axis", "split", "severity", "paper setting", "summary",
                  title=f"family {fam.name} ({fam.env_id}): {fam.summary}; control arm {fam.control}")  # fmt: skip
        for v in rows:
            t.add_row(v.name, v.axis, v.split, "-" if v.severity is None else f"{v.severity:g}", v.paper or "-",
                      v.summary)  # fmt: skip
        out.print(t)
    st = Table("suite", "variants", "members", title="suites")
    for name, members in SUITES.items():
        st.add_row(
            name, str(len(members)), ", ".join(members) if name != "all" else "every put_on catalog line"
        )
    out.print(st)
    return 0


def describe(cfg: Describe) -> int:
    from dataclasses import asdict

    from vla_gen_bench.assets.store import default_store
    from vla_gen_bench.variants import CONTROL, Variant, get_variant, manifest
    from vla_gen_bench.variants.manifest import manifest_fingerprint

    v = get_variant(cfg.variant)
    store = default_store()
    entries = manifest(v, [cfg.seed], cfg.episodes, store)
    if cfg.json:
        print(json.dumps({"variant": v.definition(), "n_configurations": v.n_configurations(store),
                          "episodes": [e.to_dict() for e in entries]}, indent=1, default=str))  # fmt: skip
    else:
        out = Console(width=None if sys.stdout.isatty() else 200)
        out.print(
            f"[bold]{v.name}[/]  family {v.family} | axis {v.axis} | split {v.split} | severity "
            f"{'-' if v.severity is None else f'{v.severity:g}'} | paper {v.paper or '- (beyond the paper)'}"
        )
        out.print(v.summary)
        changed = v.changed_factors()
        out.print(
            f"\n[bold]changes vs the control arm ({v.control}):[/]"
            if changed
            else "\n[bold]the control arm itself[/]"
        )
        from vla_gen_bench.variants.cards import describe_factor

        said = lambda n, a: describe_factor(v, n, a)  # noqa: E731 - in the variant's family (the drawer's layout)
        for n, a in changed:
            out.print(f"  {n}: {said(n, a)}   {json.dumps(asdict(a))}")
        kept = [
            said(n, a)
            for n, a in Variant(CONTROL, "in-distribution", "train", "").factors()
            if n not in dict(changed)
        ]
        out.print("[bold]kept in-distribution:[/] " + "; ".join(kept))
        out.print(f"[bold]distinct configurations:[/] {v.n_configurations(store):,}")
        out.print(f"[bold]manifest fingerprint:[/] {manifest_fingerprint(v, store)}")
        for e in entries:
            s = e.spec
            extra = []
            if s.overlay:
                extra.append(f"overlay {s.overlay.texture} a={s.overlay.alpha:g}")
            if any(s.qpos_offset):
                extra.append("qpos+" + ",".join(f"{x:+.2f}" for x in s.qpos_offset))
            if s.reposition:
                extra.append(f"move@{s.reposition.at_step}->{tuple(round(x, 3) for x in s.reposition.xy)}")
            out.print(
                f"  seed {e.seed} ep {e.episode}: '{s.instruction}' | {', '.join(s.objects)} -> "
                f"{', '.join(s.receptacles)} | {s.table} | matched {s.meta.get('matched')} {' '.join(extra)}"
            )
    if cfg.preview is not None:
        _quiet_sim()
        from vla_gen_bench.envs import make_env
        from vla_gen_bench.eval.sheets import episode_sheet

        env = make_env(asset_store=store, family=v.family)
        episode_sheet(env, v, entries, cfg.preview)
        env.close()
        console.print(f"wrote {cfg.preview}")
    return 0


def cards(cfg: Cards) -> int:
    from vla_gen_bench.assets.store import default_store
    from vla_gen_bench.variants.cards import stale_cards, write_cards

    store = default_store()
    if cfg.check:
        stale = stale_cards(cfg.out, store)
        if stale:
            console.print(
                f"[red]stale variant cards in {cfg.out}: {', '.join(stale)}; regenerate with 'vgb cards'"
            )
            return 1
        console.print(f"variant cards in {cfg.out} are current")
        return 0
    paths = write_cards(cfg.out, store)
    console.print(f"wrote {len(paths)} cards to {cfg.out}")
    return 0


# ---------------------------------------------------------------------------- simulation commands
@dataclass(frozen=True)
class Render:
    """Contact sheet: first frame of every variant of a suite (or several seeds of one variant).

    With --suite, variants that act over time (overlays, reposition) also get a strip of frames; a suite of several
    task families makes one sheet per family (``<out stem>_<family>.png``)."""

    out: Path = Path("sheet.png")
    suite: str | None = None
    """Suite (or comma-separated variants) to show one tile each; without it, --seeds tiles of --variant."""
    variant: str = "ind"
    seeds: int = 8
    """Number of seeds (tiles) when no suite is given."""
    first_seed: int = 0
    camera: CameraName = "default"
    columns: int = 4
    strips: bool = True
    """With --suite: add frame strips for the overlay and reposition variants."""


@dataclass(frozen=True)
class RunEpisode:
    """Run one episode of a policy and print its result (JSON); optionally save the policy-view video."""

    policy: str = "scripted"
    """scripted | scripted-smooth | random | zero | openvla:<dir> | ws://host:port | package.module:ClassName"""
    seed: int = 0
    video: Path | None = None
    """Write the policy's view as mp4 here."""
    camera: CameraName = "default"
    robot: str = "panda"


def render(cfg: Render) -> int:
    _quiet_sim()
    from vla_gen_bench.envs import make_env
    from vla_gen_bench.eval.sheets import seed_sheet, variant_sheet
    from vla_gen_bench.variants import families_of, get_suite, get_variant

    if cfg.seeds < 1 or cfg.columns < 1:
        raise SystemExit("--seeds and --columns must be >= 1")
    variants = get_suite(cfg.suite) if cfg.suite else None
    variant = get_variant(cfg.variant)
    if not variants:
        env = make_env(camera=cfg.camera, family=variant.family)
        seed_sheet(
            env, variant, list(range(cfg.first_seed, cfg.first_seed + cfg.seeds)), cfg.out, cfg.columns
        )
        env.close()
        console.print(f"wrote {cfg.out} ({cfg.seeds} tiles)")
        return 0
    families = families_of(variants)
    for family in families:  # one env and one sheet per task family
        members = [v for v in variants if v.family == family]
        out = cfg.out if len(families) == 1 else cfg.out.with_name(f"{cfg.out.stem}_{family}{cfg.out.suffix}")
        env = make_env(camera=cfg.camera, family=family)
        variant_sheet(env, members, out, seed=cfg.first_seed, columns=cfg.columns, strips=cfg.strips)
        env.close()
        console.print(f"wrote {out} ({len(members)} tiles, family {family})")
    return 0


def run_episode(cfg: RunEpisode) -> int:
    _quiet_sim()
    from vla_gen_bench.envs import make_env
    from vla_gen_bench.eval.runner import run_episode, write_video
    from vla_gen_bench.policies.registry import resolve_policy

    policy = resolve_policy(cfg.policy)
    env = make_env(camera=cfg.camera, robot=cfg.robot)
    res = run_episode(env, policy, seed=cfg.seed, record_frames=cfg.video is not None)
    env.close()
    if cfg.video is not None:
        cfg.video.parent.mkdir(parents=True, exist_ok=True)
        write_video(res.frames, cfg.video)
        console.print(f"wrote {cfg.video} ({len(res.frames)} frames)")
    print(json.dumps({k: v for k, v in res.record().items() if k != "spec"}))
    return 0


# ---------------------------------------------------------------------------- dispatch
def _lazy(module: str, cls: str, fn: str):
    """A command that lives in another room: its module is imported only when the command is used or listed."""

    def load():
        import importlib

        mod = importlib.import_module(module)
        return getattr(mod, cls), getattr(mod, fn)

    return load


class _TableRenderer:
    """The simulator's empty-table render for the asset commands, imported on first use: the asset room imports no
    env module, and a command refused on its inputs never loads the simulator."""

    def view_spec(self, camera, size=None):
        from vla_gen_bench.envs.table_render import view_spec

        return view_spec(camera, size)

    def render_empty_table(self, camera, size=None):
        from vla_gen_bench.envs.table_render import render_empty_table

        return render_empty_table(camera, size)


def _with_render(module: str, cls: str, fn: str):
    """An asset command whose handler takes the table render as its second argument (wired in here)."""

    def load():
        c, f = _lazy(module, cls, fn)()
        return c, functools.partial(f, sim=_TableRenderer())

    return load


def _entry(v):
    return v() if callable(v) else v


GROUPS = {
    "assets": {
        "build": (AssetsBuild, assets_build),
        "list": (AssetsList, assets_list),
        "generate-tables": _with_render("vla_gen_bench.assets.commands", "GenerateTables", "generate_tables"),
        "import-tables": _with_render("vla_gen_bench.assets.commands", "ImportTables", "import_tables"),
    },
    "model": {
        "init": _lazy("vla_gen_bench.models.commands", "ModelInit", "model_init"),
        "bundle": _lazy("vla_gen_bench.training.bundle_commands", "ModelBundle", "model_bundle"),
        "verify": _lazy("vla_gen_bench.training.bundle_commands", "ModelVerify", "model_verify"),
    },
    "train-baseline": {
        "sft": _lazy("vla_gen_bench.training.commands", "TrainSFT", "train_sft"),
        "ppo": _lazy("vla_gen_bench.training.rl_commands", "TrainPPO", "train_ppo"),
        "grpo": _lazy("vla_gen_bench.training.rl_commands", "TrainGRPO", "train_grpo"),
        "dpo": _lazy("vla_gen_bench.training.rl_commands", "TrainDPO", "train_dpo"),
    },
    "leaderboard": {
        "add": _lazy("vla_gen_bench.leaderboard.commands", "LeaderboardAdd", "leaderboard_add"),
        "validate": _lazy(
            "vla_gen_bench.leaderboard.commands", "LeaderboardValidate", "leaderboard_validate"
        ),
        "show": _lazy("vla_gen_bench.leaderboard.commands", "LeaderboardShow", "leaderboard_show"),
    },
    # LeRobot bridge: export to a LeRobotDataset, create LeRobot's own environment (vla_gen_bench/lerobot/)
    "export": {"lerobot": _lazy("vla_gen_bench.lerobot.commands", "ExportLerobot", "export_lerobot")},
    "setup": {"lerobot": _lazy("vla_gen_bench.lerobot.commands", "SetupLerobot", "setup_lerobot")},
}
COMMANDS = {
    "evaluate": _lazy("vla_gen_bench.eval.evaluate", "Evaluate", "evaluate_command"),
    "collect-demos": _lazy("vla_gen_bench.training.commands", "CollectDemos", "collect_demos"),
    "report": _lazy("vla_gen_bench.eval.report", "Report", "report_command"),
    "compare": _lazy("vla_gen_bench.eval.report", "Compare", "compare_command"),
    "audit": _lazy("vla_gen_bench.eval.audit", "Audit", "audit_command"),
    "serve": _lazy("vla_gen_bench.policies.serve", "Serve", "serve_command"),
    "list": (List, list_variants),
    "describe": (Describe, describe),
    "cards": (Cards, cards),
    "render": (Render, render),
    "run-episode": (RunEpisode, run_episode),
}


def _summary(entry) -> str:
    """First docstring line of a command; a command whose module cannot be imported says why instead."""
    try:
        cls, _ = _entry(entry)
    except ImportError as e:
        return f"(unavailable: {e})"
    return cls.__doc__.splitlines()[0]


def _usage() -> str:
    lines = ["usage: vgb <command> [options]   (vgb <command> --help for details)", ""]
    for g, subs in GROUPS.items():
        for s, entry in subs.items():
            lines.append(f"  vgb {g + ' ' + s:22s} {_summary(entry)}")
    for c, entry in COMMANDS.items():
        lines.append(f"  vgb {c:22s} {_summary(entry)}")
    return "\n".join(lines)


# Spellings kept for one release: each is rewritten to its typed flag, with one line on stderr naming the new one.
_POLICY_FLAGS = {"renames": {"--unnorm-key": "--policy.unnorm-key"}, "policy_arg": "--policy."}
_RL_FLAGS = {
    "--init": "--model.init",
    "--workers": "--rollout.workers",
    "--rollout.temperature": "--rollout.policy.temperature",
    "--eval.temperature": "--eval.policy.temperature",
}
DEPRECATED: dict[str, dict] = {
    "evaluate": {**_POLICY_FLAGS, "profile": True},
    "serve": _POLICY_FLAGS,
    "collect-demos": {"renames": {"--learner-temperature": "--learner-policy.temperature"}},
    "train-baseline sft": {
        "renames": {"--data": "--collect.out", "--workers": "--collect.workers", "--demos": "--num-demos",
                    "--eval-temperature": "--eval-policy.temperature",
                    "--dagger.temperature": "--dagger.learner-policy.temperature"},
        "sets": lambda cls: type(cls.__dataclass_fields__["sft"].default_factory()),
    },
    **{f"train-baseline {algo}": {"renames": _RL_FLAGS,
                                  "sets": lambda cls: type(cls.__dataclass_fields__["config"].default_factory())}
       for algo in ("ppo", "grpo", "dpo")},
}  # fmt: skip


def upgrade(command: str, cls, args: list[str]) -> list[str]:
    """``args`` with the deprecated spellings of ``command`` rewritten to the typed flags; one line on stderr each.

    Raises:
        ValueError: a malformed deprecated option or an unknown ``--set`` key (the message says what is allowed).
    """
    from vla_gen_bench.options import upgrade_args

    how = dict(DEPRECATED.get(command, {}))
    if "sets" in how:
        how["sets"] = how["sets"](cls)
    args, notes = upgrade_args(args, **how)
    for note in notes:
        console.print(note, style="yellow", markup=False, soft_wrap=True)
    return args


def _recipe_default(cls, args: list[str]):
    """A command whose defaults come from a recipe (``train-baseline``) builds them from the options that pick it
    (``--preset``, ``--hparams``, ...); tyro then parses every other option on top of that instance."""
    return cls.from_recipe(args) if hasattr(cls, "from_recipe") else None


def _user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean 'bad input': printed as one clear line, exit code 2, no traceback."""
    from vla_gen_bench.assets.store import AssetError
    from vla_gen_bench.options import PolicyOptionError, ProfileError
    from vla_gen_bench.policies.registry import PolicyError
    from vla_gen_bench.variants import TrainingPoolError, VariantError

    return (AssetError, PolicyError, PolicyOptionError, ProfileError, VariantError, TrainingPoolError)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except _user_errors() as e:
        console.print(f"error: {e}", style="red", markup=False, soft_wrap=True)
        return 2


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    head, rest = argv[0], argv[1:]
    if head in GROUPS:
        subs = GROUPS[head]
        if not rest or rest[0] not in subs:
            if rest and rest[0] not in ("-h", "--help"):
                console.print(f"[red]unknown command 'vgb {head} {rest[0]}'; choose from: {', '.join(subs)}")
            print(_usage())
            return 0 if rest and rest[0] in ("-h", "--help") else 2
        cls, fn = _entry(subs[rest[0]])
        try:
            args = upgrade(f"{head} {rest[0]}", cls, rest[1:])
            default = _recipe_default(cls, args)
        except (FileNotFoundError, ValueError) as e:
            console.print(f"error: {e}", style="red", markup=False, soft_wrap=True)
            return 2
        cfg = tyro.cli(cls, args=args, prog=f"vgb {head} {rest[0]}", default=default)
        return fn(cfg)
    if head in COMMANDS:
        cls, fn = _entry(COMMANDS[head])
        try:
            args = upgrade(head, cls, rest)
        except ValueError as e:
            console.print(f"error: {e}", style="red", markup=False, soft_wrap=True)
            return 2
        return fn(tyro.cli(cls, args=args, prog=f"vgb {head}"))
    import difflib

    options = list(GROUPS) + list(COMMANDS)
    close = difflib.get_close_matches(head, options, n=1)
    console.print(
        f"[red]unknown command {head!r}" + (f"; did you mean {close[0]!r}?" if close else "") + "\n"
    )
    print(_usage())
    return 2


if __name__ == "__main__":
    sys.exit(main())
