"""The run directory's two files, in one place: ``episodes.jsonl`` (one :class:`EpisodeRecord` per line) and
``run.json`` (one :class:`RunInfo`).

Every writer and reader goes through here: ``vgb evaluate`` (:func:`append`, :func:`read`, :func:`write_run`),
``vgb report`` and ``vgb compare``, ``vgb audit``, ``vgb leaderboard add/validate``, model cards and the training
recipes' evaluation summaries (:func:`read_run`).

One line = one episode, canonical JSON (sorted keys) sealed into the hash chain of :mod:`.chain`. The rules every
reader applies (:func:`read`):

* **Torn last line.** ``vgb evaluate`` writes a record and its newline in one ``write``; a last line without its
  newline is a write torn by a kill, and never counts (even when it happens to parse). ``vgb evaluate`` cuts it off
  and runs that episode again, ``vgb report`` warns, the leaderboard refuses the run until it is resumed.
* Any other unreadable or malformed line is an error naming ``file:line``; blank lines are skipped.
* **Repeats.** An episode (variant, seed, episode) recorded again with the same outcome counts once (the first line
  kept); with a different outcome the file is refused (``vgb evaluate`` writes each episode once).
* **Old names.** Records written by early versions (the runner's ``success_at_end`` / ``ever_grasped``, no
  ``chain``, ``action_digest`` or ``return``) still load: the names are migrated on reading, absent optional fields
  are None.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from vla_gen_bench.episode import FAILURE_LABELS  # noqa: F401 - re-exported for readers of records
from vla_gen_bench.eval.stats import AXES
from vla_gen_bench.families import all_failure_labels

EPISODES = "episodes.jsonl"
RUN_JSON = "run.json"
OLD_NAMES = {"success_at_end": "success", "ever_grasped": "grasped"}  # early files used the runner's names
_NUM = (int, float)
NULL = type(None)


class RecordError(ValueError):
    """An unreadable ``episodes.jsonl`` line or ``run.json``; the message names file:line and what to do."""


# name in the JSON line -> (accepted types, required); None in the types means JSON null is allowed
FIELDS: dict[str, tuple[tuple, bool]] = {
    "variant": ((str,), True),
    "axis": ((str,), True),
    "split": ((str,), True),
    "severity": ((int, float, NULL), False),
    "episode": ((int,), True),
    "seed": ((int,), True),
    "success": ((bool,), True),
    "success_once": ((bool,), True),
    "grasped": ((bool,), True),
    "consecutive_grasp": ((bool,), False),
    "failure": ((str,), True),
    "steps": ((int,), False),
    "wall_s": (_NUM, False),
    "instruction": ((str,), True),
    "policy": ((str,), True),
    "video": ((str, NULL), False),
}
"""The fields a reader checks (types; required ones must be present). ``return``, ``action_digest``, ``matched``,
``worker`` and ``chain`` are optional and carried as written."""


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode, as ``episodes.jsonl`` holds it (the JSON names; ``return_`` is ``"return"``)."""

    variant: str
    axis: str
    split: str
    seed: int
    episode: int
    policy: str
    success: bool
    """Scored success: at the final step (the profile may score success_once instead)."""
    success_once: bool
    grasped: bool
    """Ever grasped during the episode."""
    failure: str
    instruction: str
    severity: float | None = None
    consecutive_grasp: bool | None = None
    steps: int | None = None
    return_: float | None = None
    wall_s: float | None = None
    action_digest: str | None = None
    """sha256 (16 hex) of the executed actions; absent in runs from before digests."""
    matched: Any = None
    worker: int | None = None
    video: str | None = None
    chain: str | None = None
    """The line's hash-chain link (:mod:`.chain`); absent in runs from before chains."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields this version does not know, carried unchanged."""

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.variant, self.seed, self.episode)

    @property
    def outcome(self) -> tuple:
        """What two lines of the same episode must agree on."""
        return (self.success, self.success_once, self.grasped, self.failure)

    @classmethod
    def from_result(cls, res, *, variant, seed: int, episode: int, policy: str, success: bool,
                    matched: Any = None, worker: int | None = None) -> EpisodeRecord:  # fmt: skip
        """The record of a runner :class:`~vla_gen_bench.eval.runner.EpisodeResult` (the same field names;
        ``success`` is given as the run's profile scores it, the result's is at the final step)."""
        return cls(
            variant=variant.name, axis=variant.axis, split=variant.split, severity=variant.severity, seed=seed,
            episode=episode, policy=policy, success=success, success_once=res.success_once,
            grasped=res.grasped, consecutive_grasp=res.consecutive_grasp, failure=res.failure,
            steps=res.steps, return_=res.return_, wall_s=res.wall_s, instruction=res.instruction,
            action_digest=res.action_digest, matched=matched, worker=worker,
        )  # fmt: skip

    def to_dict(self, chain: bool = True) -> dict[str, Any]:
        """The JSON object of the line (``chain`` included when ``chain`` and present). ``severity`` and
        ``matched`` are always written (null allowed), other absent optional fields are left out."""
        d: dict[str, Any] = {
            "variant": self.variant, "axis": self.axis, "split": self.split, "severity": self.severity,
            "seed": self.seed, "episode": self.episode, "policy": self.policy, "success": self.success,
            "success_once": self.success_once, "grasped": self.grasped,
        }  # fmt: skip
        optional = {"consecutive_grasp": self.consecutive_grasp, "failure": self.failure, "steps": self.steps,
                    "return": self.return_, "wall_s": self.wall_s, "instruction": self.instruction,
                    "action_digest": self.action_digest}  # fmt: skip
        d.update({k: v for k, v in optional.items() if v is not None})
        d["matched"] = self.matched
        if self.worker is not None:
            d["worker"] = self.worker
        if self.video is not None:
            d["video"] = self.video
        d.update(self.extra)
        if chain and self.chain is not None:
            d["chain"] = self.chain
        return d

    @classmethod
    def from_dict(cls, r: Any, where: str) -> EpisodeRecord:
        """A parsed JSON line as a record; RecordError naming ``where`` (file:line) when it is not one."""
        if not isinstance(r, dict):
            raise RecordError(f"{where}: expected a JSON object (one episode record), got {type(r).__name__}")
        r = dict(r)
        for old, new in OLD_NAMES.items():
            if new not in r and old in r:
                r[new] = r.pop(old)
        for name, (types, required) in FIELDS.items():
            if name not in r:
                if required:
                    raise RecordError(f"{where}: missing field {name!r} (an episode record needs: "
                                      f"{', '.join(k for k, (_, req) in FIELDS.items() if req)})")  # fmt: skip
                continue
            v = r[name]
            ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
            if ok and isinstance(v, float) and not math.isfinite(v):
                ok = False
            if not ok:
                raise RecordError(f"{where}: field {name!r} must be {_type_name(types)}, got {json.dumps(v)}")
        if r["axis"] not in AXES:
            raise RecordError(f"{where}: axis {r['axis']!r} is not one of {', '.join(AXES)}")
        labels = all_failure_labels()  # every task family's (vla_gen_bench.families)
        if r["failure"] not in labels:
            raise RecordError(f"{where}: failure {r['failure']!r} is not one of {', '.join(labels)}")
        if r["seed"] < 0 or r["episode"] < 0:
            raise RecordError(f"{where}: seed and episode index must be >= 0, got seed {r['seed']}, episode "
                              f"{r['episode']}")  # fmt: skip
        known = {"variant", "axis", "split", "severity", "seed", "episode", "policy", "success", "success_once",
                 "grasped", "consecutive_grasp", "failure", "steps", "return", "wall_s", "instruction",
                 "action_digest", "matched", "worker", "video", "chain"}  # fmt: skip
        return cls(
            variant=r["variant"], axis=r["axis"], split=r["split"], seed=r["seed"], episode=r["episode"],
            policy=r["policy"], success=r["success"], success_once=r["success_once"], grasped=r["grasped"],
            failure=r["failure"], instruction=r["instruction"], severity=r.get("severity"),
            consecutive_grasp=r.get("consecutive_grasp"), steps=r.get("steps"), return_=r.get("return"),
            wall_s=r.get("wall_s"), action_digest=r.get("action_digest"), matched=r.get("matched"),
            worker=r.get("worker"), video=r.get("video"), chain=r.get("chain"),
            extra={k: v for k, v in r.items() if k not in known},
        )  # fmt: skip


def _type_name(types: tuple) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", NULL: "null",
             dict: "a JSON object", tuple: "a list"}  # fmt: skip
    return " or ".join(dict.fromkeys(names[t] for t in types))


# ---------------------------------------------------------------------------- episodes.jsonl
def duplicate_message(path: Path | str, key: tuple[str, int, int], first: int, again: int) -> str:
    """The refusal for an episode recorded twice with different outcomes, with a remedy that works."""
    return (f"{path}:{again}: ({key[0]}, seed {key[1]}, episode {key[2]}) is recorded again with a different outcome "
            f"(first on line {first}); 'vgb evaluate' writes each episode once, so the file was merged or edited. "
            f"Delete line {first} and every line after it, then re-run the same 'vgb evaluate' command (it runs "
            f"those episodes again and re-seals the file), or start over with a new --out")  # fmt: skip


@dataclass
class Episodes:
    """What :func:`read` found in an ``episodes.jsonl``."""

    path: Path
    records: list[EpisodeRecord] = field(default_factory=list)
    """One per (variant, seed, episode), the first line kept, in file order."""
    lines: list[int] = field(default_factory=list)
    """The line number of each record."""
    torn: int | None = None
    """Line number of a torn last line (no newline), which was not read."""
    repeats: list[tuple[int, int, tuple[str, int, int]]] = field(default_factory=list)
    """(line, first line, key) of exact repeats, counted once."""

    def dicts(self) -> list[dict[str, Any]]:
        """The records as JSON objects without their chain links (what statistics and tables read)."""
        return [r.to_dict(chain=False) for r in self.records]

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.torn is not None:
            out.append(f"{self.path.name}:{self.torn}: torn last line (the run was killed mid-write) ignored; "
                       f"resuming the run re-runs that episode")  # fmt: skip
        if self.repeats:
            shown = "; ".join(f"line {n} repeats line {first} ({k[0]}, seed {k[1]}, episode {k[2]})"
                              for n, first, k in self.repeats[:5])  # fmt: skip
            more = f"; and {len(self.repeats) - 5} more" if len(self.repeats) > 5 else ""
            out.append(f"{self.path.name}: {len(self.repeats)} duplicated (variant, seed, episode) line(s) counted "
                       f"once, the first kept ({shown}{more})")  # fmt: skip
        return out


def read(path: Path | str) -> Episodes:
    """Records of an ``episodes.jsonl`` under the rules in the module docstring (a missing file has none).

    Raises:
        RecordError: a line that is not valid UTF-8 / JSON / an episode record, or an episode recorded twice with
            different outcomes (file:line and what to do).
    """
    path = Path(path)
    out = Episodes(path)
    if not path.exists():
        return out
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        out.torn = len(lines)  # no newline after the last line: a write torn by a kill
        lines.pop()
    first: dict[tuple[str, int, int], int] = {}
    for no, b in enumerate(lines, 1):
        where = f"{path}:{no}"
        try:
            line = b.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError(f"{where}: not UTF-8 text ({e.reason}); restore the file 'vgb evaluate' "
                              f"wrote") from None  # fmt: skip
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise RecordError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); a truncated last line means "
                              f"the run was killed mid-write: delete that line and resume") from None  # fmt: skip
        r = EpisodeRecord.from_dict(obj, where)
        if r.key in first:
            i = first[r.key]
            if out.records[i].outcome != r.outcome:
                raise RecordError(duplicate_message(path, r.key, out.lines[i], no))
            out.repeats.append((no, out.lines[i], r.key))
            continue
        first[r.key] = len(out.records)
        out.records.append(r)
        out.lines.append(no)
    return out


def cut_torn(path: Path | str) -> bool:
    """Cut a torn last line off (before appending after it); returns whether there was one."""
    path = Path(path)
    if not path.exists():
        return False
    raw = path.read_bytes()
    if not raw or raw.endswith(b"\n"):
        return False
    # the torn line never counted; its episode is simply run again (truncating needs no free space)
    os.truncate(path, raw.rfind(b"\n") + 1)
    return True


def append(path: Path | str, record: EpisodeRecord, prev: str) -> str:
    """Write ``record`` as one line, sealed into the hash chain after the link ``prev`` (:func:`.chain.seal`), with a
    single write() on an O_APPEND descriptor, fsync'ed; returns the new last link.

    All or nothing: a write that fails or lands only in part (a full disk, a file-size limit) is cut off again, so
    the file keeps whole, chained lines only, and the OSError is raised (ENOSPC for a short write).
    """
    import errno

    from vla_gen_bench.eval.chain import seal

    data, head = seal(prev, record.to_dict(chain=False))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size  # the one writer holds the run's lock: nobody appends in between
        try:
            n = os.write(fd, data)
            if n != len(data):
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (wrote {n} of {len(data)} bytes)",
                              str(path))  # fmt: skip
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)  # never leave a part of the line (it would tear the next one)
            raise
    finally:
        os.close(fd)
    return head


# ---------------------------------------------------------------------------- run.json
@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """``run.json``: what a run ran (policy, suite, variants, seeds), with which settings, software and hashes.

    ``vgb evaluate`` writes it (:func:`write_run`) before its first episode and again when it ends; every reader
    gets it from :func:`read_run`. The fields are in the order the file holds them; those without a default are
    required (:data:`RUN_REQUIRED`), the others are None when the file does not have them (runs from before they
    existed). Keys this version does not know are kept in ``extra``, so any run.json round-trips:
    ``RunInfo.from_dict(d, where).to_dict() == d``.
    """

    policy: str
    """The ``--policy`` string."""
    policy_id: str
    """Hash (16 hex) of the ``--policy`` string and what the adapter reports about itself."""
    policy_metadata: dict[str, Any] | None = None
    """What the adapter reports about itself (an OpenVLA checkpoint: its ``checkpoint_sha256``, temperature...)."""
    policy_args: dict[str, Any] | None = None
    """The keyword arguments the policy was built with."""
    suite: str
    suite_hash: str
    """Hash of the suite's variants and their episodes."""
    catalog_hash: str
    """Hash of the whole variant catalog."""
    asset_pack: str | None = None
    """``procedural``, ``rl4vla`` or the name of a generated pack."""
    asset_source: dict[str, Any] | None = None
    asset_pack_hash: str
    table_pack: dict[str, Any] | None = None
    """name, hash and source of a generated table pack (null: none)."""
    control: str
    """The control variant (in-distribution arm) every variant is paired with."""
    variants: dict[str, dict[str, Any]]
    """The suite's variants in order, each with its axis, split, severity, description and paper setting."""
    seeds: tuple[int, ...]
    episodes_per_seed: int
    defaults_from_profile: tuple[str, ...] | None = None
    """The settings the profile chose because the command left them out."""
    robot: str | None = None
    camera: str | None = None
    sim_freq: int | None = None
    profile: str | None = None
    """The evaluation profile; None in runs from before profiles, which ran as ``vgb`` (:attr:`profile_name`)."""
    profile_settings: dict[str, Any] | None = None
    """What the profile changes (its quirks, episodes, seeds, shader...); null under ``vgb``."""
    config: dict[str, Any] | None = None
    """The ``vgb evaluate`` options as given."""
    versions: dict[str, str]
    """Python, platform and package versions (``vla-gen-bench`` among them)."""
    created: str
    """When the run started (ISO date-time, UTC)."""
    action_spec: dict[str, Any] | None = None
    conventions_check: Any = None
    """The conventions probe's findings, or why it was skipped."""
    resumed: int | None = None
    """How many times the run was resumed (None: never)."""
    policy_timeout_s: float | None = None
    render_device: dict[str, Any] | None = None
    """The Vulkan device SAPIEN rendered with: requested (--render-device), name as SAPIEN reports it,
    cpu_rasteriser (lavapipe) and ManiSkill's render backend; None in runs from before it was recorded."""
    episodes_chain: dict[str, Any] | None = None
    """format, lines, head and unbound_lines of the episodes' hash chain (:mod:`.chain`) when last written."""
    timing: dict[str, Any] | None = None
    """Set-up and run time of the last invocation, episodes per minute, policy-process batching."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, carried unchanged."""
    nulls: frozenset[str] = frozenset(("asset_source", "table_pack", "profile_settings"))
    """The optional keys written as JSON null when None (else None leaves a key out): ``vgb evaluate`` records
    these even when unused; a run read from a file keeps the nulls it had."""

    @property
    def profile_name(self) -> str:
        return self.profile or "vgb"

    def __post_init__(self) -> None:
        for name in ("seeds", "defaults_from_profile"):  # JSON lists, held as tuples
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for name, types in RUN_TYPES.items():
            v = getattr(self, name)
            if v is None and name not in RUN_REQUIRED:
                continue
            if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
                raise RecordError(f"{name!r} must be {_type_name(types)}, got {json.dumps(v, default=str)}")
        if not self.variants or not all(isinstance(m, dict) for m in self.variants.values()):
            raise RecordError("'variants' must map the suite's variant names to their axis, split, severity and "
                              "description")  # fmt: skip
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in self.seeds):
            raise RecordError(
                f"'seeds' must be a list of integers, got {json.dumps(self.seeds, default=str)}"
            )
        if self.episodes_per_seed < 1:
            raise RecordError(f"'episodes_per_seed' must be a positive integer, got {self.episodes_per_seed}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``run.json`` (absent optional fields left out, ``extra`` last)."""
        out: dict[str, Any] = {}
        for name in RUN_TYPES:
            v = getattr(self, name)
            if v is None and name not in self.nulls:
                continue
            out[name] = list(v) if isinstance(v, tuple) else v
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str) -> RunInfo:
        """A parsed ``run.json`` as a RunInfo; RecordError naming ``where`` when a key is missing or mistyped."""
        if not isinstance(d, dict):
            raise RecordError(f"{where}: expected a JSON object")
        missing = [k for k in RUN_REQUIRED if k not in d]
        if missing:
            raise RecordError(f"{where} lacks {', '.join(map(repr, missing))}; it was not written by 'vgb evaluate' "
                              f"(or by a version too old to read): re-run 'vgb evaluate' into a new --out")  # fmt: skip
        known = {k: d[k] for k in RUN_TYPES if k in d}
        try:
            return cls(**known, extra={k: v for k, v in d.items() if k not in RUN_TYPES},
                       nulls=frozenset(k for k, v in known.items() if v is None))  # fmt: skip
        except RecordError as e:
            raise RecordError(f"{where}: {e}") from None


# the JSON types of run.json's keys, in the order the file holds them (None is allowed for the optional ones)
RUN_TYPES: dict[str, tuple[type, ...]] = {
    "policy": (str,), "policy_id": (str,), "policy_metadata": (dict,), "policy_args": (dict,), "suite": (str,),
    "suite_hash": (str,), "catalog_hash": (str,), "asset_pack": (str,), "asset_source": (dict,),
    "asset_pack_hash": (str,), "table_pack": (dict,), "control": (str,), "variants": (dict,), "seeds": (tuple,),
    "episodes_per_seed": (int,), "defaults_from_profile": (tuple,), "robot": (str,), "camera": (str,),
    "sim_freq": (int,), "profile": (str,), "profile_settings": (dict,), "config": (dict,), "versions": (dict,),
    "created": (str,), "action_spec": (dict,), "conventions_check": (dict, str), "resumed": (int,),
    "policy_timeout_s": (int, float), "render_device": (dict,), "episodes_chain": (dict,), "timing": (dict,),
}  # fmt: skip
RUN_REQUIRED = tuple(f.name for f in fields(RunInfo) if f.default is MISSING and f.default_factory is MISSING)
"""The keys every run.json must have: what every reader (report, audit, leaderboard, model cards) needs."""


def read_run(run_dir: Path | str) -> RunInfo:
    """``run.json`` of a run directory; RecordError (missing, not UTF-8, not a JSON object, a required key missing
    or a key of the wrong type)."""
    d = Path(run_dir)
    path = d / RUN_JSON
    if not path.is_file():
        raise RecordError(f"{path} not found; is {d} a run directory written by 'vgb evaluate'?")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise RecordError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); restore the file 'vgb evaluate' "
                          f"wrote") from None  # fmt: skip
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON ({e})") from None
    return RunInfo.from_dict(cfg, str(path))


def write_run(run_dir: Path | str, run: RunInfo) -> Path:
    """Write ``run.json`` (indent 1; values JSON cannot hold as strings) with :func:`write_atomic`: a full disk
    leaves the previous ``run.json``, never a truncated one."""
    path = Path(run_dir) / RUN_JSON
    write_atomic(path, json.dumps(run.to_dict(), indent=1, default=str).encode("utf-8"))
    return path


def temporary_name(path: Path | str) -> Path:
    """Where a file is written before it is renamed onto ``path``: a hidden name beside it (the same file system,
    so the rename is atomic), with this process's id, and ``path``'s suffix (ffmpeg picks the format by it)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def write_atomic(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: into :func:`temporary_name`, fsync'ed, then ``os.replace``d
    onto ``path``; the temporary file is removed when anything fails (the OSError raised names ``path``)."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_TEMPORARY = re.compile(r"^\..+\.tmp-\d+(\.\w+)?$")


def remove_temporaries(run_dir: Path | str) -> list[Path]:
    """Remove the temporary files (:func:`temporary_name`) that a writer killed mid-write left in a run folder and
    its ``videos/``; only the run's one writer, holding its lock, calls this. Returns what was removed."""
    d = Path(run_dir)
    gone = []
    for folder in (d, d / "videos"):
        if folder.is_dir():
            for p in folder.iterdir():
                if _TEMPORARY.match(p.name) and p.is_file():
                    p.unlink(missing_ok=True)
                    gone.append(p)
    return gone
