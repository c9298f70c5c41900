"""The stack family's scripted oracle: the put_on waypoint oracle with the base block as its receptacle.

Stacking is pick-and-place onto a raised, narrower target: :class:`~vla_gen_bench.policies.scripted.ScriptedPolicy`
already lowers the piece until its bottom is 6 mm over the receptacle's top (``receptacle_height`` above the base's
bottom, which ``VgbStack-v1``'s ``privileged()`` gives), centred over the receptacle's origin (the base's top centre,
every base is centred on it), releases and lifts away; it starts over when the piece leaves the hand or is moved
after the release (the reposition variant). :class:`ScriptedPolicy` hands a stack episode's observations here (the
env's ``privileged()`` dict says ``family="stack"``), and this runs the put_on script on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_gen_bench.policies.scripted import ScriptedPolicy


@dataclass
class StackScriptedPolicy(ScriptedPolicy):
    """Stack oracle; one instance per episode stream (``reset`` restarts the script)."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        p = {k: v for k, v in obs["privileged"].items() if k != "family"}  # the pick-and-place script itself
        return super().act({**obs, "privileged": p})
