"""The repository's documents speak of the product: no work sessions or issue numbers, no dead links, every results
folder they name exists, every test docs/guarantees.md names exists, every README command line parses.

What counts as a mention (case-insensitive, in every Markdown file under README.md, docs/, baselines/, tasks/,
leaderboard/, asset_pipeline/, vla_gen_bench/ and in every string of baselines/checkpoints/*/card.json):

* ``SESSION``: the word "session" or "sessions", except in pytest's vocabulary ("session-scoped", "session fixture",
  ``scope="session"``).
* ``ISSUE``: "issue" or "issues" followed by a number, with or without "#" or spaces between ("issue 16", "Issue
  16's", "issue #13", "issue21"). Another project's tracker is cited by its URL (``.../issues/13``), which does not
  match.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN_ROOTS = ("docs", "baselines", "tasks", "leaderboard", "asset_pipeline", "vla_gen_bench")
# the documents whose links and results paths are checked (the ones written for people, not generated)
GUIDES = ("README.md", "docs/*.md", "baselines/README.md", "baselines/results/README.md")
# the documents whose command lines (code blocks) must use today's commands and flags
COMMAND_DOCS = (
    "README.md",
    "baselines/README.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md")),
)

SESSION = re.compile(r"(?<!scope=\")(?<!scope=')\bsessions?\b(?!-scoped|\s+fixtures?\b)", re.IGNORECASE)
ISSUE = re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
RESULTS_PATH = re.compile(r"baselines/results/[\w.\-/]*[\w\-]")


def markdown_files() -> list[Path]:
    files = {ROOT / "README.md"}
    for top in MARKDOWN_ROOTS:
        files.update(
            p for p in (ROOT / top).rglob("*.md") if not any(part.startswith(".") for part in p.parts)
        )
    return sorted(files)


def card_files() -> list[Path]:
    return sorted((ROOT / "baselines" / "checkpoints").glob("*/card.json"))


def guides() -> list[Path]:
    return sorted({p for pattern in GUIDES for p in ROOT.glob(pattern)})


def strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in strings(v)]
    return []


def mentions(text: str) -> list[tuple[int, str]]:
    """(line number, matched words) of every session or issue mention in ``text``."""
    found = []
    for i, line in enumerate(text.splitlines(), 1):
        found += [(i, m.group(0)) for pattern in (SESSION, ISSUE) for m in pattern.finditer(line)]
    return found


def test_the_patterns_match_what_they_should_and_nothing_else():
    hits = ["session 12's round", "(session 9, lost", "Session 13 read", "this session had no GPU", "earlier sessions",
            "issue 16 item 4", "Issue 16's 30 %", "its issue #13", "oracle-panda-issue21", "issues 3 and 4"]  # fmt: skip
    misses = ["a session-scoped fixture", "the session fixture", 'scope="session"', "an issue with the mesh",
              "github.com/gen-robot/RL4VLA/issues/13", "tissue 3", "sessional"]  # fmt: skip
    assert [s for s in hits if not mentions(s)] == []
    assert [s for s in misses if mentions(s)] == []


def test_no_markdown_file_or_model_card_mentions_a_session_or_an_issue_number():
    bad = []
    for path in markdown_files():
        bad += [f"{path.relative_to(ROOT)}:{i}: {m!r}" for i, m in mentions(path.read_text(encoding="utf-8"))]
    for path in card_files():
        for s in strings(json.loads(path.read_text(encoding="utf-8"))):
            bad += [f"{path.relative_to(ROOT)}: {m!r} in {s[:60]!r}..." for _, m in mentions(s)]
    assert len(markdown_files()) > 20 and card_files()  # the globs found the documents
    assert not bad, "documents must speak of the product, not of work sessions or issues:\n" + "\n".join(bad)


def without_code(text: str) -> str:
    """``text`` with fenced blocks blanked (line numbers kept) and inline code removed."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return INLINE_CODE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: links reduced to their text, lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE):
        s = slug(m.group(1))
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return frozenset(out)


def test_slug_follows_github():
    assert slug("## 1. The task: `VgbPutOnReceptacle-v1`".lstrip("# ")) == "1-the-task-vgbputonreceptacle-v1"
    assert slug("SFT v2–v7: a demonstrator (2026-11-25)") == "sft-v2v7-a-demonstrator-2026-11-25"


def test_relative_links_resolve_to_files_and_anchors():
    bad = []
    for path in guides():
        for i, line in enumerate(without_code(path.read_text(encoding="utf-8")).splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                    continue
                file, _, anchor = target.partition("#")
                dest = (path.parent / file).resolve() if file else path
                where = f"{path.relative_to(ROOT)}:{i}: {target}"
                if not dest.exists():
                    bad.append(f"{where}: no such file or folder")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    bad.append(f"{where}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_every_results_folder_the_documents_name_exists():
    bad = []
    for path in guides():
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in RESULTS_PATH.finditer(line):
                if not (ROOT / m.group(0)).exists():
                    bad.append(f"{path.relative_to(ROOT)}:{i}: {m.group(0)}")
    assert not bad, "results paths that do not exist:\n" + "\n".join(bad)


def test_every_figure_in_the_readme_baselines_links_its_results_folder():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Reproduce the baselines") :]
    section = section[: section.index("\n## ", 1)]
    rows = [r for r in section.splitlines() if re.search(r"\d+/\d+", r)]
    assert rows
    for row in rows:  # every "k/n" success count is the text of a link into baselines/results
        counts = re.findall(r"(?<![\w/.\-])\d+/\d+(?: = [\d.]+ %)?", row)
        linked = re.findall(r"\[(\d+/\d+(?: = [\d.]+ %)?)\]\(baselines/results/", row)
        assert len(linked) == len(counts), f"a success count without its results folder: {row}"


def test_readme_stays_a_guide():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 350, f"README.md has {len(lines)} lines; move details to docs/ (target: at most 350)"


def test_every_test_the_guarantees_name_exists():
    section = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    named, current = [], None
    for m in re.finditer(r"(tests/[\w/]+\.py)(?:::(\w+))?|`::(\w+)`", section):
        if m.group(1):
            current = m.group(1)
        name = m.group(2) or m.group(3)
        named.append((current, name))
    assert len(named) > 20
    bad = []
    for file, name in named:
        path = ROOT / file
        if not path.is_file():
            bad.append(f"{file}: no such test file")
        elif name and not re.search(
            rf"^\s*(async\s+)?def {name}\(", path.read_text(encoding="utf-8"), re.MULTILINE
        ):
            bad.append(f"{file}::{name}: no such test")
    assert not bad, "the guarantees name tests that do not exist:\n" + "\n".join(bad)


# ---------------------------------------------------------------------------------------- command lines
# One process prints `vgb --help` and then `vgb <command> --help` for every command it lists, separated by NUL lines
# (one import of the CLI instead of one per command).
HELP_SCRIPT = r"""
import contextlib, io, re, sys
from vla_gen_bench.cli import main

def help_of(args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            main([*args, "--help"])
        except SystemExit:
            pass
    return buf.getvalue()

top = help_of([])
names = re.findall(r"^\s+vgb ([a-z][\w-]*(?: [a-z][\w-]*)?)\s+[A-Z]", top, re.MULTILINE)
print("\0" + "\n".join(names))
for name in names:
    print("\0" + help_of(name.split()))
"""


@cache
def cli_help() -> dict[str, str]:
    """{command name ("evaluate", "leaderboard add", ...): its --help text}, for every command `vgb --help` lists."""
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    out = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names, *texts = out.stdout.split("\0")[1:]
    helps = dict(zip(names.strip().split("\n"), texts, strict=True))
    assert {"evaluate", "assets generate-tables", "leaderboard add"} <= set(helps)
    return helps


def commands() -> tuple[str, ...]:
    return tuple(cli_help())


@cache
def flags_of(command: str) -> frozenset[str]:
    return frozenset(re.findall(r"--[a-z][a-z0-9.\-]*", cli_help()[command]))


def command_lines(path: Path) -> list[str]:
    """Every `vgb ...` line of the shell code blocks in ``path`` (continuations joined, comments dropped)."""
    blocks, lang, body = [], None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, body = line[3:].strip(), []
            else:
                if lang in ("", "bash", "sh", "console"):
                    blocks.append("\n".join(body))
                lang = None
        elif lang is not None:
            body.append(line)
    out = []
    for block in blocks:
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.split(r"\s#\s", line)[0].strip()
            if line.startswith("vgb "):
                out.append(line)
    return out


@pytest.mark.parametrize("doc", COMMAND_DOCS)
def test_command_lines_use_flags_the_cli_has(doc):
    lines = command_lines(ROOT / doc)
    if doc == "README.md":  # the README's inline commands too (`vgb audit <run> --sample N`)
        lines += [
            " ".join(s.split())
            for s in re.findall(r"`(vgb\s[^`]+)`", (ROOT / doc).read_text(encoding="utf-8"))
        ]
    bad = []
    for line in lines:
        words = line.split()[1:]
        if words[0].startswith(("-", "<")):  # `vgb --help`, `vgb <command> --help`
            continue
        name = max((c for c in commands() if words[: len(c.split())] == c.split()), key=len, default=None)
        if name is None:
            bad.append(f"{line}: no such command (vgb --help)")
            continue
        unknown = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9.\-]*", line)) - flags_of(name))
        if unknown:
            bad.append(f"{line}: vgb {name} has no {', '.join(unknown)}")
    assert not bad, f"{doc}: command lines that do not parse today:\n" + "\n".join(bad)
