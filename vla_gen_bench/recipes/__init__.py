"""Training recipes, shipped with the package: ``<algo>_<preset>.toml`` (``sft_tiny.toml``, ``ppo_openvla-7b.toml``).

A recipe is the default instance of its command's config: ``vgb train-baseline <algo> --preset <preset>`` loads it
here and tyro parses the command line on top of it (``--lr 1e-4 --rollout.workers 1``). Two layouts:

* ``sft_*`` / ``warmup_*``: ``name``, ``description``, ``[demos]`` (DemoConfig fields, ``[demos.filter]``) and
  ``[sft]`` (SFTConfig fields);
* ``ppo_*`` / ``grpo_*`` / ``dpo_*``: ``[config]`` (the algorithm's config fields; nested tables are its
  ``model`` / ``rollout`` / ``eval`` blocks), named hyper-parameter sets ``[hparams.<name>]`` applied on top, and
  ``default_hparams``.

Paths inside a recipe (``init``, ``out``, ``data/demos/...``) are run and data folders relative to the working
directory, not recipe names. The one exception is ``init = "bundled:<name>"``: a small reference checkpoint shipped
with the package (:func:`checkpoint`), so the tiny RL recipes start the same way from a source checkout and from
``pip install vla-gen-bench``.
"""

from __future__ import annotations

import difflib
from dataclasses import fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

ALGOS = ("sft", "warmup", "ppo", "grpo", "dpo")
BUNDLED = "bundled:"
"""Prefix of a checkpoint shipped with the package: ``init = "bundled:sft-tiny-v12"``."""


def names() -> list[str]:
    """Every shipped recipe, as ``<algo>_<preset>``."""
    return sorted(
        p.name[: -len(".toml")] for p in resources.files(__name__).iterdir() if p.name.endswith(".toml")
    )


def presets(algo: str) -> list[str]:
    """The presets that have a ``<algo>`` recipe."""
    return [n.split("_", 1)[1] for n in names() if n.split("_", 1)[0] == algo]


def read(algo: str, preset: str) -> dict[str, Any]:
    """The raw TOML of the shipped recipe ``<algo>_<preset>.toml``.

    Raises:
        FileNotFoundError: no such recipe (the message lists the presets that exist, with a did-you-mean).
    """
    name = f"{algo}_{preset}.toml"
    res = resources.files(__name__) / name
    if not res.is_file():
        have = presets(algo)
        close = difflib.get_close_matches(preset, have, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise FileNotFoundError(
            f"no {algo} recipe for preset {preset!r}{hint}; available: {', '.join(have) or 'none'}"
        )
    return _parse(res.read_text(encoding="utf-8"), f"recipe {name}")


def read_file(path: Path) -> dict[str, Any]:
    """The raw TOML of a recipe file outside the package (``--recipe FILE``)."""
    return _parse(Path(path).read_text(encoding="utf-8"), str(path))


def bundled_root() -> Path:
    """Where the shipped reference checkpoints live: ``vla_gen_bench/checkpoints/<name>/``. In a source checkout each
    is a symbolic link to ``baselines/checkpoints/<name>`` (one copy in git); the wheel holds the files."""
    return Path(__file__).resolve().parent.parent / "checkpoints"


def bundled() -> list[str]:
    """The names of the reference checkpoints shipped with the package (``bundled:<name>``)."""
    root = bundled_root()
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file()) if root.is_dir() else []


def checkpoint(init: str | Path) -> Path:
    """The checkpoint folder a recipe's ``init`` names: ``bundled:<name>`` is a reference checkpoint shipped with the
    package (found the same way in a source checkout and an installed wheel); anything else is a path, returned
    as it is (relative to the working directory).

    Raises:
        FileNotFoundError: ``bundled:<name>`` with no shipped checkpoint of that name (the message names the folder
            it looked in, the shipped names and a did-you-mean).
    """
    text = str(init)
    if not text.startswith(BUNDLED):
        return Path(init)
    name = text[len(BUNDLED) :]
    have = bundled()
    if name in have:
        return (bundled_root() / name).resolve()
    close = difflib.get_close_matches(name, have, n=1)
    hint = f"did you mean '{BUNDLED}{close[0]}'? " if close else ""
    raise FileNotFoundError(
        f"no bundled checkpoint {name!r} in {bundled_root()}; {hint}shipped: {', '.join(have) or 'none'}; "
        "or pass a checkpoint folder (--model.init DIR)"
    )


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{where}: invalid TOML: {e}") from e


def rl_settings(raw: dict[str, Any], hparams: str | None = None, where: str = "recipe") -> dict[str, Any]:
    """An RL recipe's ``[config]`` table overridden by ``[hparams.<name>]`` (default: ``default_hparams``).

    Raises:
        ValueError: an unknown hyper-parameter set (did-you-mean).
    """
    cfg = dict(raw.get("config", {}))
    sets = raw.get("hparams", {})
    name = hparams or raw.get("default_hparams")
    if name is not None:
        if name not in sets:
            close = difflib.get_close_matches(name, list(sets), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown hyper-parameter set {name!r} in {where}{hint}; available: {', '.join(sets)}"
            )
        cfg = merge(cfg, sets[name])
        cfg["hparams"] = name
    return cfg


def merge(a: dict, b: dict) -> dict:
    """``b`` over ``a``, nested tables merged key by key."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build(cls, data: dict[str, Any], where: str = "", base=None):
    """The (nested, frozen) dataclass ``cls`` from recipe data over ``base`` (default: ``cls()``'s defaults).

    TOML arrays become tuples and strings become ``Path`` where the field is a path. Unknown keys get a
    did-you-mean.
    """
    names_ = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for k, v in data.items():
        if k not in names_:
            close = difflib.get_close_matches(k, list(names_), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown setting {where}{k!r}{hint}; allowed: {', '.join(names_)}")
        default = getattr(base, k, None) if base is not None else _default(cls, k)
        if is_dataclass(default) and isinstance(v, dict):
            v = build(type(default), v, where=f"{where}{k}.", base=default)
        elif isinstance(v, list):
            v = tuple(v)
        elif isinstance(v, str) and (isinstance(default, Path) or "Path" in str(names_[k].type)):
            v = Path(v)
        kwargs[k] = v
    if base is not None:
        from dataclasses import replace

        return replace(base, **kwargs)
    return cls(**kwargs)


def _default(cls, name: str):
    for f in fields(cls):
        if f.name == name:
            from dataclasses import MISSING

            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    return None


class RecipeCommand:
    """Base of the ``vgb train-baseline`` commands, whose default instance is a recipe.

    ``PICK`` names the options that choose the recipe (``--preset``, ``--warmup``, ``--recipe``, ``--hparams``): they
    are read from the command line first (:meth:`from_recipe`), the recipe becomes tyro's ``default=``, and tyro
    parses every option on top of it. A subclass builds its instance from the picked recipe in :meth:`from_picked`.
    """

    PICK: tuple[str, ...] = ()

    @classmethod
    def from_recipe(cls, args: list[str] | None = None, **options):
        """The command with the recipe its ``args`` (or ``options``) pick as defaults; the other ``options`` are
        field values of the command.

        Raises:
            FileNotFoundError: no such recipe; ValueError: unknown keys in it (did-you-mean).
        """
        picked = {k: v for k, v in _preparse(cls, list(args or [])).items() if v is not None}
        picked.update({k: v for k, v in options.items() if k in cls.PICK})
        return cls.from_picked(picked, **{k: v for k, v in options.items() if k not in cls.PICK})

    @classmethod
    def from_picked(cls, picked: dict[str, Any], **rest):  # pragma: no cover - every command defines it
        raise NotImplementedError


def _preparse(cls, args: list[str]) -> dict[str, Any]:
    """The ``PICK`` options of ``args`` (a field with a bool default is a ``--x/--no-x`` flag, the others take a
    value); everything else is left to tyro."""
    import argparse

    own = {f.name: f for f in fields(cls)} if is_dataclass(cls) else {}
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in cls.PICK:
        opt = "--" + name.replace("_", "-")
        if name in own and isinstance(own[name].default, bool):
            p.add_argument(opt, action=argparse.BooleanOptionalAction, default=None, dest=name)
        else:
            p.add_argument(opt, default=None, dest=name)
    known, _ = p.parse_known_args([a for a in args if a not in ("-h", "--help")])
    return vars(known)
