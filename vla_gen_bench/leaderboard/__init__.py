"""The leaderboard: a CSV of per-variant results that people submit to, validated and re-derivable.

``leaderboard/leaderboard.csv`` holds one row per (policy, variant); :mod:`.schema` defines its columns (and
``leaderboard/schema.json``), :mod:`.derive` computes ``run`` rows from a run directory's episodes, :mod:`.validate`
checks a CSV (and re-derives it from ``leaderboard/submissions/``), :mod:`.board` adds runs and renders ranked
tables, :mod:`.reported` holds the RL4VLA paper's published numbers. The leaderboard reads results only: it never
imports the simulator or the models.
"""

from vla_gen_bench.leaderboard.board import add, show  # noqa: F401
from vla_gen_bench.leaderboard.derive import LeaderboardError, run_rows  # noqa: F401
from vla_gen_bench.leaderboard.schema import COLUMNS, NAMES, json_schema  # noqa: F401
from vla_gen_bench.leaderboard.validate import check_submissions, validate, validate_text  # noqa: F401
