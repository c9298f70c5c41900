"""ManiSkill task family of the benchmark. Importing this module registers ``VgbPutOnReceptacle-v1``;
:func:`make_env` builds it.

(This import loads ManiSkill and torch; ``import vla_gen_bench`` alone does not.)
"""

from vla_gen_bench.envs.make import gpu_physx_hint, make_env  # noqa: F401
from vla_gen_bench.envs.put_on_receptacle import (  # noqa: F401
    ENV_ID,
    FAILURE_LABELS,
    MAX_EPISODE_STEPS,
    PutOnReceptacleEnv,
)
