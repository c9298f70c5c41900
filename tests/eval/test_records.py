"""The one episode record and its one reader: old run folders still load, one torn-line rule, the bytes written."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from vla_gen_bench.eval.chain import genesis, verify
from vla_gen_bench.eval.evaluate import RunDirError, read_done
from vla_gen_bench.eval.records import (
    EPISODES,
    RUN_REQUIRED,
    RUN_TYPES,
    EpisodeRecord,
    RecordError,
    RunInfo,
    append,
    cut_torn,
    read,
    read_run,
    write_run,
)
from vla_gen_bench.eval.report import RunError, load_run, write_csvs

from .conftest import record

ROOT = Path(__file__).resolve().parents[2]
# committed run folders with a summary.csv, all written before hash chains and action digests
OLD_RUNS = sorted(
    p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "baselines" / "results").rglob("summary.csv")
)
NUMBERS = ("n", "successes", "rate", "ci_low", "ci_high", "grasp_rate", "success_once_rate", "paired_n",
           "diff_vs_control", "diff_low", "diff_high", "relative_drop")  # fmt: skip


def summary_numbers(rows: list[dict[str, str]]) -> dict[str, tuple[str, ...]]:
    return {r["variant"]: tuple(r[k] for k in NUMBERS) for r in rows}


def committed_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "*episodes.jsonl"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.split()


# ---------------------------------------------------------------------------- old folders
def test_an_old_run_folder_without_chain_or_digest_loads_and_re_derives_its_summary(tmp_path):
    """baselines/results/oracle-all (34 variants, 272 episodes) predates chains and action digests."""
    src = ROOT / "baselines" / "results" / "oracle-all"
    eps = read(src / EPISODES)
    assert len(eps.records) == 272 and eps.torn is None and not eps.repeats
    assert all(r.chain is None and r.action_digest is None for r in eps.records)
    want = summary_numbers(list(csv.DictReader((src / "summary.csv").open())))
    # the committed folder is never written to: re-derive in a copy, as 'vgb report' does (without the plots)
    run = tmp_path / "oracle-all"
    shutil.copytree(src, run)
    loaded = load_run(run)
    write_csvs(loaded, loaded.summary())
    assert summary_numbers(list(csv.DictReader((run / "summary.csv").open()))) == want
    # the same folder with the runner's old field names (success_at_end, ever_grasped) gives the same numbers
    lines = []
    for line in (src / EPISODES).read_text().splitlines():
        r = json.loads(line)
        r["success_at_end"], r["ever_grasped"] = r.pop("success"), r.pop("grasped")
        lines.append(json.dumps(r, sort_keys=True))
    (run / EPISODES).write_text("\n".join(lines) + "\n")
    loaded = load_run(run)
    write_csvs(loaded, loaded.summary())
    assert summary_numbers(list(csv.DictReader((run / "summary.csv").open()))) == want


@pytest.mark.parametrize("folder", OLD_RUNS)
def test_every_committed_results_folder_re_derives_its_summary(folder):
    d = ROOT / folder
    s = load_run(d).summary()
    want = summary_numbers(list(csv.DictReader((d / "summary.csv").open())))
    got = {}
    for v in s.variants:
        p = v.paired
        paired = (None,) * 4 if p is None else (p.n, p.diff, p.low, p.high)
        values = (v.n, v.successes, v.rate, v.ci_low, v.ci_high, v.grasp_rate, v.success_once_rate, *paired,
                  v.relative_drop)  # fmt: skip
        got[v.variant] = tuple("" if x is None else str(x) for x in values)
    assert got == want


def test_every_committed_line_round_trips_byte_for_byte():
    """What the reader makes of a line is what the writer would write again (sorted keys, same fields)."""
    files = committed_files()
    assert files
    for f in files:
        for no, line in enumerate((ROOT / f).read_text().splitlines(), 1):
            r = EpisodeRecord.from_dict(json.loads(line), f"{f}:{no}")
            assert json.dumps(r.to_dict(), sort_keys=True) == line, f"{f}:{no}"


def test_the_record_written_has_the_fields_and_names_it_always_had():
    res = SimpleNamespace(success=True, success_once=True, grasped=True, consecutive_grasp=False,
                          failure="dropped", steps=80, return_=0.1, wall_s=1.5, instruction="put a on b",
                          action_digest="0123456789abcdef")  # fmt: skip
    variant = SimpleNamespace(name="unseen_table", axis="vision", split="test", severity=None)
    rec = EpisodeRecord.from_result(res, variant=variant, seed=3, episode=4, policy="scripted", success=False,
                                    matched="cells", worker=1)  # fmt: skip
    assert rec.to_dict() == {
        "variant": "unseen_table", "axis": "vision", "split": "test", "severity": None, "seed": 3, "episode": 4,
        "policy": "scripted", "success": False, "success_once": True, "grasped": True, "consecutive_grasp": False,
        "failure": "dropped", "steps": 80, "return": 0.1, "wall_s": 1.5, "instruction": "put a on b",
        "action_digest": "0123456789abcdef", "matched": "cells", "worker": 1,
    }  # fmt: skip
    # matched is written even when null (as before), an unknown field is carried through
    r = EpisodeRecord.from_dict({**rec.to_dict(), "matched": None, "future": [1]}, "x:1")
    assert r.to_dict()["matched"] is None and r.to_dict()["future"] == [1]


# ---------------------------------------------------------------------------- the torn-line rule
def _full(k: int, success: bool) -> EpisodeRecord:
    return EpisodeRecord.from_dict(record("ind", k, success, seed=0), "t")


@pytest.mark.parametrize("tail", ['{"variant": "ind", "axis": "in-dis', "COMPLETE"])
def test_a_torn_last_line_never_counts_for_any_reader(tmp_path, tail):
    run = {
        "policy_id": "a" * 16,
        "suite_hash": "b" * 16,
        "asset_pack_hash": "c" * 16,
        "created": "2026-01-01",
    }
    path = tmp_path / EPISODES
    head = genesis(run)
    for k in range(3):
        head = append(path, _full(k, k != 1), head)
    good = path.read_bytes()
    if tail == "COMPLETE":  # a whole record whose newline was never written is torn too
        tail = json.dumps(_full(3, True).to_dict(), sort_keys=True)
    path.write_bytes(good + tail.encode())
    eps = read(path)
    assert [r.episode for r in eps.records] == [0, 1, 2] and eps.torn == 4
    assert any(w.startswith("episodes.jsonl:4: torn last line") for w in eps.warnings)
    assert path.read_bytes() == good + tail.encode()  # reading never writes
    # the evaluator cuts it off before appending, and the chain continues from line 3
    assert set(read_done(path)) == {("ind", 0, 0), ("ind", 0, 1), ("ind", 0, 2)}
    assert path.read_bytes() == good and not cut_torn(path)
    append(path, _full(3, True), head)
    assert verify(path.read_text().splitlines(), genesis(run)).verified


def test_a_torn_line_in_the_middle_is_an_error_with_its_line_number(tmp_path):
    path = tmp_path / EPISODES
    recs = [json.dumps(record("ind", k, True, seed=0)) for k in range(3)]
    path.write_text(recs[0] + "\n" + recs[1][:30] + "\n" + recs[2] + "\n")
    with pytest.raises(RecordError, match=r"episodes.jsonl:2: not valid JSON"):
        read(path)
    with pytest.raises(RunDirError, match=r"episodes.jsonl:2: not valid JSON"):
        read_done(path)


def test_report_and_leaderboard_apply_the_same_rule(tmp_path):
    from tests.leaderboard.conftest import make_run
    from vla_gen_bench.leaderboard.derive import LeaderboardError, run_rows

    d = make_run(tmp_path / "run")
    ej = d / EPISODES
    ej.write_bytes(ej.read_bytes() + b'{"variant": "ind"')
    run = load_run(d)
    assert len(run.records) == 50 and any("torn last line" in w for w in run.warnings)
    with pytest.raises(LeaderboardError, match=r"episodes.jsonl:51: a torn last line"):
        run_rows(d)
    # conflicting repeats: refused by both, with the same message
    lines = ej.read_text().splitlines()[:50]
    flipped = {**json.loads(lines[0]), "success": False, "success_once": False, "failure": "misplaced"}
    ej.write_text("\n".join([*lines, json.dumps(flipped)]) + "\n")
    with pytest.raises(RunError, match=r"episodes.jsonl:51: \(ind, seed 0, episode 0\) is recorded again"):
        load_run(d)
    with pytest.raises(
        LeaderboardError, match=r"episodes.jsonl:51: \(ind, seed 0, episode 0\) is recorded again"
    ):
        run_rows(d)


# ---------------------------------------------------------------------------- run.json
def committed_run_jsons() -> list[str]:
    out = subprocess.run(["git", "ls-files", "*run.json"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.split()


def test_every_committed_run_json_round_trips_and_keeps_its_chain_genesis():
    """Every run.json in the repository (results, leaderboard submissions) reads as a RunInfo and writes back the
    same JSON object, so the hash chain's first link (which hashes part of run.json) is unchanged."""
    files = committed_run_jsons()
    assert len(files) >= 40 and any(f.startswith("leaderboard/submissions/") for f in files)
    for f in files:
        d = json.loads((ROOT / f).read_text())
        info = RunInfo.from_dict(d, f)
        assert info.to_dict() == d, f
        assert genesis(info.to_dict()) == genesis(d), f
        assert json.loads(json.dumps(info.to_dict(), indent=1)) == d, f


def test_the_typed_fields_are_the_keys_run_json_holds():
    from dataclasses import fields

    assert [f.name for f in fields(RunInfo)] == [*RUN_TYPES, "extra", "nulls"]
    assert RUN_REQUIRED == ("policy", "policy_id", "suite", "suite_hash", "catalog_hash", "asset_pack_hash",
                            "control", "variants", "seeds", "episodes_per_seed", "versions", "created")  # fmt: skip


def _run_dict(**over) -> dict:
    d = {"policy": "random", "policy_id": "a" * 16, "suite": "ind", "suite_hash": "b" * 16, "catalog_hash": "c" * 16,
         "asset_pack_hash": "d" * 16, "control": "ind", "variants": {"ind": {"axis": "in-distribution"}},
         "seeds": [0, 1], "episodes_per_seed": 2, "versions": {"vla-gen-bench": "0.1.0"},
         "created": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def test_an_old_run_json_keeps_what_it_had_and_unknown_keys_survive(tmp_path):
    old = _run_dict(camera="default", future_key={"x": [1, 2]})  # no profile: a run from before profiles
    info = RunInfo.from_dict(old, "run.json")
    assert (info.profile, info.profile_name, info.seeds) == (None, "vgb", (0, 1))
    assert info.extra == {"future_key": {"x": [1, 2]}}
    assert info.to_dict() == old and "profile" not in info.to_dict() and "table_pack" not in info.to_dict()
    # a null the file had is written back as null; a run built in code records the unused packs as null
    assert RunInfo.from_dict({**old, "robot": None}, "run.json").to_dict() == {**old, "robot": None}
    new = RunInfo(**{k: v for k, v in info.to_dict().items() if k != "future_key"} | {"seeds": (0, 1)})
    assert {k: new.to_dict()[k] for k in ("asset_source", "table_pack", "profile_settings")} == dict.fromkeys(
        ("asset_source", "table_pack", "profile_settings"))  # fmt: skip
    write_run(tmp_path, info)
    assert read_run(tmp_path) == info and json.loads((tmp_path / "run.json").read_text()) == old


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"control": ...}, r"run.json lacks 'control'; it was not written by 'vgb evaluate'"),
        ({"policy_id": ..., "seeds": ...}, r"run.json lacks 'policy_id', 'seeds'"),
        ({"seeds": [0, True]}, r"run.json: 'seeds' must be a list of integers, got \[0, true\]"),
        ({"seeds": "0"}, r"run.json: 'seeds' must be a list, got \"0\""),
        ({"episodes_per_seed": 0}, r"'episodes_per_seed' must be a positive integer, got 0"),
        ({"episodes_per_seed": 2.0}, r"'episodes_per_seed' must be an integer, got 2.0"),
        ({"variants": {}}, r"'variants' must map the suite's variant names"),
        ({"variants": {"ind": "vision"}}, r"'variants' must map the suite's variant names"),
        ({"policy": None}, r"'policy' must be a string, got null"),
        ({"profile_settings": [1]}, r"'profile_settings' must be a JSON object, got \[1\]"),
        ({"sim_freq": True}, r"'sim_freq' must be an integer, got true"),
    ],
)
def test_a_run_json_missing_or_mistyping_a_key_is_refused_by_every_reader(tmp_path, over, message):
    from vla_gen_bench.eval.audit import AuditError, _load
    from vla_gen_bench.leaderboard.derive import LeaderboardError, read_run_json

    d = tmp_path / "run"
    d.mkdir()
    (d / "run.json").write_text(json.dumps(_run_dict(**over)))
    (d / EPISODES).write_text(json.dumps(record("ind", 0, True, policy="random", seed=0)) + "\n")
    for error, read_it in ((RecordError, read_run), (RunError, load_run), (LeaderboardError, read_run_json),
                           (AuditError, _load)):  # fmt: skip
        with pytest.raises(error, match=message):
            read_it(d)
