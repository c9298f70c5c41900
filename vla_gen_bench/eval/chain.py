"""The hash chain that makes a run's ``episodes.jsonl`` tamper-evident.

``vgb evaluate`` writes every episode record as canonical JSON (sorted keys) with one extra field, ``chain``:

    chain_0 = sha256("vgb-episodes-1" + run identity)      # policy_id, suite_hash, asset_pack_hash, created
    chain_i = sha256(chain_{i-1} + "\\n" + canonical JSON of record i without its "chain" field)

and ``run.json`` records the format, the number of lines and the last link (``episodes_chain``) when the run ends.
Changing any byte of a line (a flipped ``success``, an edited number, even re-indenting it), deleting, reordering
or pasting lines from another run breaks the chain at the first line touched, and :func:`verify` names it.

What this is and is not: it detects edits made after ``vgb evaluate`` wrote a line (by hand, by a script, by a
merge). It is not a signature: anyone can recompute a SHA-256 chain, so a submitter determined to forge results
can; the defence against that is that every episode is reproducible (fixed manifests, per-episode sampling keys,
``action_digest`` per record), so a reviewer can re-run any episode and compare.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

FORMAT = "vgb-episodes-sha256-chain-1"
FIELD = "chain"
IDENTITY = ("policy_id", "suite_hash", "asset_pack_hash", "created")


def genesis(run: dict[str, Any]) -> str:
    """The chain's first link, bound to the run's identity in ``run.json``."""
    ident = json.dumps({k: run.get(k) for k in IDENTITY}, sort_keys=True)
    return hashlib.sha256(f"vgb-episodes-1\n{ident}".encode()).hexdigest()


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in record.items() if k != FIELD}, sort_keys=True)


def link(prev: str, record: dict[str, Any]) -> str:
    return hashlib.sha256(f"{prev}\n{_canonical(record)}".encode()).hexdigest()


def seal(prev: str, record: dict[str, Any]) -> tuple[bytes, str]:
    """The line ``vgb evaluate`` writes for ``record`` after the link ``prev``, and the new last link."""
    h = link(prev, record)
    return (json.dumps({**record, FIELD: h}, sort_keys=True) + "\n").encode(), h


@dataclass
class ChainCheck:
    """What :func:`verify` found in the lines of an episodes.jsonl."""

    head: str
    """The last link (what the next line continues from)."""
    lines: int = 0
    """Record lines seen."""
    unbound: list[int] = field(default_factory=list)
    """Line numbers without a ``chain`` field (written before vgb recorded chains)."""
    broken: int | None = None
    """The first line whose link does not match (edited, inserted, deleted or moved)."""

    @property
    def verified(self) -> bool:
        return self.broken is None and not self.unbound and self.lines > 0


def verify(lines: list[str], first: str) -> ChainCheck:
    """Walk the chain over ``lines`` (the file's lines, blank ones skipped) from the link ``first``.

    A line is bound when it carries ``chain``, the link matches, and it is byte-identical to the canonical form
    ``vgb evaluate`` writes. Lines without ``chain`` (older runs) still advance the chain, so a run resumed by this
    version continues it; they are listed in ``unbound``. Lines that are not JSON objects are left to the caller.
    """
    out = ChainCheck(head=first)
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            if out.broken is None:
                out.broken = no
            continue
        if not isinstance(r, dict):
            out.broken = out.broken or no
            continue
        out.lines += 1
        expected = link(out.head, r)
        if FIELD not in r:
            out.unbound.append(no)
        elif out.broken is None and (r[FIELD] != expected or line != json.dumps(r, sort_keys=True)):
            out.broken = no
        out.head = expected
    return out
