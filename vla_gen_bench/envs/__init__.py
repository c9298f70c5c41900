"""ManiSkill task family of the benchmark. Importing this module registers ``VgbPutOnReceptacle-v1``.

(This import loads ManiSkill and torch; ``import vla_gen_bench`` alone does not.)
"""

from vla_gen_bench.envs.put_on_receptacle import ENV_ID, FAILURE_LABELS, PutOnReceptacleEnv  # noqa: F401
