"""Which room may import which: every import in the package (module level and inside functions, plus
``importlib.import_module("vla_gen_bench....")``) is read with ``ast`` and checked against one table.

The arrows are DESIGN.md §2's, with the ones the code needs spelled out (a room may use the shared top-level
modules ``cameras``, ``episode``, ``options``, ``paths``, ``_compat`` and the package root). A new arrow is a line
in :data:`ALLOWED` and a sentence in the design, never a silent import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vla_gen_bench"
ROOMS = (
    "cli",
    "envs",
    "variants",
    "assets",
    "policies",
    "models",
    "eval",
    "training",
    "leaderboard",
    "recipes",
    "lerobot",
)
SHARED = (
    "cameras",
    "episode",
    "families",
    "options",
    "paths",
    "_compat",
    "",
)  # "" = ``import vla_gen_bench`` itself

ALLOWED: dict[str, set[str]] = {
    "cli": set(ROOMS) - {"cli"},  # parses and dispatches to every room
    "eval": {"variants", "policies", "envs", "assets"},
    # eval: the runner's stepping pieces and in-training evaluation; recipes: the presets' defaults (data)
    "training": {"eval", "models", "variants", "policies", "envs", "assets", "recipes"},
    "leaderboard": {"eval", "variants"},  # it reads results: records, chain, stats
    "policies": {
        "models",
        "lerobot",
    },  # lerobot: the lerobot:<dir> adapter (its server runs in LeRobot's venv)
    "envs": {"assets", "variants"},  # variants: a variant given by name is looked up in the catalog
    "variants": {"assets"},
    "assets": set(),  # generators take images; the CLI wires the simulator's render in
    "models": set(),  # the VLA is simulator-agnostic
    "recipes": set(),
    "lerobot": set(),  # the LeRobot bridge's scripts run in LeRobot's own environment
}
# DESIGN.md's "never" arrows, checked directly as well so that widening ALLOWED cannot quietly admit one.
NEVER: dict[str, set[str]] = {
    "envs": {"policies", "eval", "training"},  # the simulator knows no agent
    "models": {"envs", "eval"},
    "policies": {"eval", "training"},
    "eval": {"training"},
    "leaderboard": {"envs", "models"},
    "assets": {"envs"},
}
# Shared top-level modules are leaves: they import no room.
LEAVES = {m for m in SHARED if m}


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package: Path = PACKAGE) -> list[tuple[str, int]]:
    """Every ``vla_gen_bench`` module ``path`` imports, with the line (absolute and relative imports alike)."""
    mod = _module_name(path, package)
    here = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((name, node.lineno))
            # ``from vla_gen_bench import envs`` names the room in the alias
            if name == "vla_gen_bench":
                out += [(f"vla_gen_bench.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == (
            "import_module"
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.args[0].value, node.lineno))
    return [(n, line) for n, line in out if n == "vla_gen_bench" or n.startswith("vla_gen_bench.")]


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _edges() -> list[tuple[str, str, str]]:
    """(importing room, imported room, 'file:line -> module') for every import across rooms."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = _room(_module_name(path))
        for name, line in _imports(path):
            dst = _room(name)
            if dst != src:
                edges.append((src, dst, f"{path.relative_to(PACKAGE.parent)}:{line} -> {name}"))
    return edges


def test_every_module_is_in_a_known_room():
    rooms = {_room(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert rooms <= set(ROOMS) | set(SHARED), (
        f"new top-level module(s) {rooms - set(ROOMS) - set(SHARED)}: add them"
    )


def test_the_table_never_allows_a_forbidden_arrow():
    for src, dsts in NEVER.items():
        assert not dsts & ALLOWED[src], (src, dsts & ALLOWED[src])


@pytest.mark.parametrize("room", [*ROOMS, *sorted(LEAVES)])
def test_room_imports_only_what_the_design_allows(room):
    allowed = (
        set(SHARED) - {room} if room in LEAVES else set(SHARED) | ALLOWED[room]
    )  # a leaf: other leaves only
    bad = [where for src, dst, where in _edges() if src == room and dst not in allowed]
    assert not bad, (
        f"{room} may import only {sorted(allowed - {''})} (tests/test_import_directions.py):\n"
        + "\n".join(bad)
    )


def test_the_rooms_form_no_cycle():
    graph: dict[str, set[str]] = {}
    for src, dst, _ in _edges():
        if src in ROOMS and dst in ROOMS:
            graph.setdefault(src, set()).add(dst)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = [r for r in graph if r in reach(r)]
    assert not cycles, f"rooms that import themselves back through others: {cycles}"


def test_envs_are_built_from_the_envs_room():
    """Training and the CLI build envs with ``vla_gen_bench.envs.make_env``, never through evaluation."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and any(a.name == "make_env" for a in node.names):
                if not (node.module or "").startswith("vla_gen_bench.envs") and path.parent.name != "envs":
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} from {node.module}")
    assert not bad, bad


def test_the_check_sees_function_level_and_relative_imports(tmp_path):
    """The parser itself: an import inside a function and a relative one are both found."""
    pkg = tmp_path / "vla_gen_bench" / "envs"
    pkg.mkdir(parents=True)
    f = pkg / "probe.py"
    f.write_text("def f():\n    from vla_gen_bench.eval import runner\n    from ..policies import base\n"
                 "    import importlib\n    importlib.import_module('vla_gen_bench.training.sft')\n")  # fmt: skip
    names = [n for n, _ in _imports(f, tmp_path / "vla_gen_bench")]
    assert names == ["vla_gen_bench.eval", "vla_gen_bench.policies", "vla_gen_bench.training.sft"]
