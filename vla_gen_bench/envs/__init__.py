"""ManiSkill task families of the benchmark (:mod:`vla_gen_bench.families`). Importing this module registers
``VgbPutOnReceptacle-v1``, ``VgbPush-v1``, ``VgbStack-v1`` and ``VgbDrawer-v1``; :func:`make_env` builds a family's env.

(This import loads ManiSkill and torch; ``import vla_gen_bench`` alone does not.)
"""

from vla_gen_bench.envs.drawer import ENV_ID as DRAWER_ENV_ID  # noqa: F401, E402
from vla_gen_bench.envs.make import gpu_physx_hint, make_env  # noqa: F401
from vla_gen_bench.envs.push import ENV_ID as PUSH_ENV_ID  # noqa: F401, E402
from vla_gen_bench.envs.push import PushEnv  # noqa: F401, E402
from vla_gen_bench.envs.put_on_receptacle import (  # noqa: F401
    ENV_ID,
    FAILURE_LABELS,
    MAX_EPISODE_STEPS,
    PutOnReceptacleEnv,
)
from vla_gen_bench.envs.stack import ENV_ID as STACK_ENV_ID  # noqa: F401, E402
from vla_gen_bench.envs.stack import StackEnv  # noqa: F401, E402
