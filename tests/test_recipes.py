"""Recipes are the tyro defaults of `vgb train-baseline`: every shipped `<algo>_<preset>.toml` builds, the CLI parses
the recipe's fields directly, `--set` is the same override spelled the old way, and `init = "bundled:<name>"` names
a reference checkpoint shipped with the package (tests/test_wheel_install.py: the installed wheel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vla_gen_bench import recipes
from vla_gen_bench.cli import main

REPO = Path(__file__).resolve().parents[1]


def _presets() -> tuple[str, ...]:
    """The presets `--preset` takes."""
    from typing import get_args, get_type_hints

    from vla_gen_bench.training.commands import TrainSFT

    return get_args(get_type_hints(TrainSFT)["preset"])


def load_every_recipe() -> dict[str, object]:
    """name -> the config(s) it builds: SFT recipes a (DemoConfig, SFTConfig), RL recipes one config per hparams set."""
    from vla_gen_bench.training.commands import TrainSFT, build_configs
    from vla_gen_bench.training.rl_commands import resolve_config

    built: dict[str, object] = {}
    for name in recipes.names():
        algo, preset = name.split("_", 1)
        if algo in ("sft", "warmup"):
            built[name] = build_configs(TrainSFT.from_recipe(preset=preset, warmup=algo == "warmup"))[1:]
        else:
            sets = recipes.read(algo, preset).get("hparams", {}) or {None: {}}
            built[name] = [resolve_config(algo, preset=preset, hparams=h) for h in sets]
    return built


def test_every_recipe_is_algo_preset_and_builds():
    presets = set(_presets())
    names = recipes.names()
    assert {n.split("_", 1)[0] for n in names} == set(recipes.ALGOS)
    from vla_gen_bench.families import FAMILIES

    family_recipes = []
    for name in names:
        algo, preset = name.split("_", 1)
        family = next((f for f in FAMILIES if f != "put_on" and preset.endswith(f"_{f}")), None)
        if family is not None:  # sft_<preset>_<family>.toml: a task family's own SFT recipe
            preset = preset[: -len(family) - 1]
            family_recipes.append((algo, family))
        assert algo in recipes.ALGOS and preset in presets, (
            f"{name}.toml is not <algo>_<preset>[_<family>].toml"
        )
    assert {a for a, _ in family_recipes} <= {"sft"}
    built = load_every_recipe()
    assert len(built) == len(names) == 2 * len(recipes.ALGOS) + len(family_recipes)
    demo, sft = built["sft_tiny"]
    assert (demo.camera, sft.eval_camera, sft.demos) == ("fast", "fast", demo.out)
    assert [c.hparams for c in built["ppo_tiny"]] == ["ours", "released", "text"]
    # run folders named inside recipes are run folders (the 7B SFT run keeps its name)
    assert str(built["ppo_openvla-7b"][2].model.init) == "runs/baselines/sft-openvla7b/final"
    assert built["sft_openvla-7b"][1].out == Path("runs/baselines/sft-openvla7b")


def _dry_run(capsys, *args: str) -> dict:
    assert main(["train-baseline", *args, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_parses_recipe_fields_over_the_recipe(capsys):
    base = _dry_run(capsys, "ppo", "--preset", "tiny")
    cfg = _dry_run(capsys, "ppo", "--preset", "tiny", "--lr", "1e-4", "--rollout.workers", "1", "--hparams",
                   "released", "--eval.seeds", "0", "1")  # fmt: skip
    assert (cfg["lr"], cfg["rollout"]["workers"], cfg["eval"]["seeds"]) == (1e-4, 1, [0, 1])
    assert (cfg["truncation"], cfg["pg_coef"], cfg["hparams"]) == (
        "terminal",
        7.0,
        "released",
    )  # the named set
    assert (
        cfg["iterations"] == base["iterations"] == 40 and base["hparams"] == "ours"
    )  # the rest: the recipe's
    old = _dry_run(capsys, "ppo", "--preset", "tiny", "--hparams", "released", "--set", "lr=1e-4", "--set",
                   "rollout.workers=1", "--set", "eval.seeds=[0,1]")  # fmt: skip
    assert old == cfg  # the deprecated spelling
    assert _dry_run(capsys, "ppo", "--preset", "tiny", "--set", "lr=1", "--lr", "2")["lr"] == 2  # flags win
    for algo in ("grpo", "dpo"):
        assert _dry_run(capsys, algo, "--preset", "openvla-7b")["rollout"]["camera"] == "paper"


def test_cli_refuses_unknown_presets_and_settings(capsys):
    assert main(["train-baseline", "grpo", "--preset", "tinny", "--dry-run"]) == 2
    assert "did you mean 'tiny'" in capsys.readouterr().err
    assert main(["train-baseline", "ppo", "--set", "gama=1", "--dry-run"]) == 2
    assert "did you mean 'gamma'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train-baseline", "ppo", "--gama", "1", "--dry-run"])


def test_sft_command_takes_recipe_fields():
    import tyro

    from vla_gen_bench.cli import _recipe_default
    from vla_gen_bench.training.commands import TrainSFT, build_configs

    args = ["--preset", "openvla-7b", "--warmup", "--lr", "3e-4", "--collect.episodes", "20", "--num-demos", "10"]  # fmt: skip
    name, demo, sft = build_configs(tyro.cli(TrainSFT, args=args, default=_recipe_default(TrainSFT, args)))
    assert (name, sft.lr, sft.num_demos, demo.episodes, demo.camera) == (
        "warmup_openvla7b",
        3e-4,
        10,
        20,
        "default",
    )
    assert (sft.max_steps, sft.init) == (2000, "checkpoints/openvla-7b")  # the warm-up recipe's


def test_tiny_sft_recipe_dagger_learner_is_a_bundled_checkpoint(monkeypatch):
    """v12's DAgger round starts from a checkpoint shipped in the repository, so a fresh clone reproduces the recipe
    without training the first stage, and the learner's checkpoint passes the command's own check."""
    from vla_gen_bench.training.commands import TrainSFT, build_configs, check_dagger

    cmd = TrainSFT.from_recipe(preset="tiny")
    _, demo, sft = build_configs(cmd)
    assert str(cmd.dagger.first_learner) == "bundled:sft-tiny"  # a name, the same from a checkout and a wheel
    learner = recipes.checkpoint(cmd.dagger.first_learner)
    assert cmd.dagger.rounds == 1 and learner == (REPO / "baselines" / "checkpoints" / "sft-tiny").resolve()
    assert (learner / "card.json").is_file() and (learner / "config.json").is_file()
    assert (sft.max_steps, sft.execute, sft.extra_until_close) == (32000, 2, 3)
    monkeypatch.chdir("/")  # nothing in the recipe is relative to the repository root
    check_dagger(cmd.dagger, demo)


def test_tiny_rl_recipes_start_from_the_bundled_sft_reference():
    """`vgb train-baseline ppo|grpo|dpo --preset tiny` runs on a fresh clone: the default set's init is a checkpoint
    shipped in the repository (the current SFT reference), not a run folder that only exists after training."""
    from vla_gen_bench.training.actor_critic import resolve_key
    from vla_gen_bench.training.rl_commands import resolve_config

    for algo in ("ppo", "grpo", "dpo"):
        name = resolve_config(algo, preset="tiny").model.init
        assert str(name) == "bundled:sft-tiny-v12", algo  # a name, the same from a checkout and from a wheel
        init = recipes.checkpoint(name)
        assert init == (REPO / "baselines" / "checkpoints" / "sft-tiny-v12").resolve(), algo
        card = json.loads((init / "card.json").read_text())
        assert card["checkpoint_sha256"] and (init / "model.safetensors").is_file()
        stats = json.loads((init / "config.json").read_text())["norm_stats"]
        assert resolve_key(stats, None) == "vgb_demos"  # one unnorm key: RL needs no --unnorm-key


def _strings(table) -> list[str]:
    """Every string value of a (nested) TOML table."""
    if isinstance(table, dict):
        return [s for v in table.values() for s in _strings(v)]
    if isinstance(table, list):
        return [s for v in table for s in _strings(v)]
    return [table] if isinstance(table, str) else []


def test_bundled_init_resolves_by_name_and_a_path_stays_a_path():
    """One lookup for `bundled:<name>`: every name a recipe uses ships, in the checkout as a link to the one copy in
    baselines/checkpoints/ (no second copy in git); anything else is a path; an unknown name is one line naming
    the folder it looked in, with a did-you-mean."""
    used = {s[len(recipes.BUNDLED) :] for n in recipes.names() for s in _strings(recipes.read(*n.split("_", 1)))
            if s.startswith(recipes.BUNDLED)}  # fmt: skip
    assert used and used <= set(recipes.bundled())
    for name in recipes.bundled():
        link = recipes.bundled_root() / name
        assert link.is_symlink() and link.resolve() == (REPO / "baselines" / "checkpoints" / name).resolve()
        assert recipes.checkpoint(f"bundled:{name}") == link.resolve()
        assert (link / "card.json").is_file()
    run = "runs/baselines/sft-tiny/dagger1/final"
    assert recipes.checkpoint(run) == Path(run)
    assert recipes.checkpoint(Path("/abs/ckpt")) == Path("/abs/ckpt")
    for wrong in ("bundled:sft-tiny-v2", "bundled:../sft-tiny-v12", "bundled:"):
        with pytest.raises(FileNotFoundError) as e:
            recipes.checkpoint(wrong)
        msg = str(e.value)
        assert "\n" not in msg and str(recipes.bundled_root()) in msg, msg
        assert "shipped: ppo-tiny-v12, sft-tiny, sft-tiny-v12" in msg, msg
        assert ("did you mean 'bundled:sft-tiny-v12'?" in msg) == (wrong != "bundled:"), msg


def test_rl_command_refuses_an_init_it_cannot_find_in_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train-baseline", "ppo", "--model.init", "bundled:sft-tiny-v2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(recipes.bundled_root()) in err, err
    assert "did you mean 'bundled:sft-tiny-v12'?" in err, err
    assert main(["train-baseline", "grpo", "--model.init", "nowhere/final"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"not found at {tmp_path / 'nowhere' / 'final'}" in err


def test_family_picks_the_familys_own_sft_recipe():
    from vla_gen_bench.families import FamilyError
    from vla_gen_bench.training.commands import TrainSFT

    cmd = TrainSFT.from_recipe(["--family", "push"])
    assert cmd.recipe_file == "sft_tiny_push.toml" and cmd.family == "push"
    assert (cmd.collect.variant, cmd.sft.eval_suite, cmd.collect.oracle) == (
        "push_ind",
        "push_ind",
        "scripted",
    )
    assert TrainSFT.from_recipe([]).recipe_file == "sft_tiny.toml"  # put_on: the paper's recipe
    with pytest.raises(FamilyError, match="did you mean 'push'"):
        TrainSFT.from_recipe(["--family", "pushh"])
    with pytest.raises(ValueError, match="no warm-up recipe"):
        TrainSFT.from_recipe(["--family", "push", "--warmup"])
    with pytest.raises(FileNotFoundError, match="no sft recipe for preset 'openvla-7b_push'"):
        TrainSFT.from_recipe(["--family", "push", "--preset", "openvla-7b"])
