"""Episodes of the drawer families (``drawer_open``, ``drawer_close``): the catalog's factors on a cabinet layout.

Called by :func:`vla_gen_bench.variants.manifest.episode` for a family with ``layout="cabinet"``. The family's view
of the store (:func:`~vla_gen_bench.assets.family_store.family_store`) answers "object" with the handles and
"receptacle" with the cabinets, so the pool factors (table, objects, receptacles, instructions, overlay) are the
catalog's own and act through that view unchanged. Four factors mean something else on a cabinet and are laid out
here, with :mod:`vla_gen_bench.assets.cabinets`' placement ranges:

* ``positions`` (ring >= 1): the drawer front just outside the training box, yaw jitter beyond the training range;
* ``distractor`` (objects only): a base-pack object in front of the cabinet, beside the drawer's path;
* ``robot_init``: an offset row whose hand starts clear of the cabinet (re-drawn until it does);
* ``reposition``: the push-back (the drawer set back to where it started right after ``at_step`` actions).

Episode ``k`` of every variant of a drawer family starts from the same base draw (cabinet, handle, table, front
position and yaw) as episode ``k`` of the family's control arm, wherever the variant's factors leave them alone.
"""

from __future__ import annotations

import math

import numpy as np

from vla_gen_bench.assets import cabinets as CB
from vla_gen_bench.episode import EpisodeSpec, Reposition, grid_cells
from vla_gen_bench.variants.factors import Draft, RobotInit, VariantError

POOL_FACTORS = ("table", "objects", "receptacles", "instructions", "overlay")
"""Factors applied exactly as for every family (through the family's view of the store)."""


def drawer_episode(v, family, seed: int, k: int, store, streams: dict[str, int]) -> EpisodeSpec:
    """Episode ``k`` of the drawer variant ``v`` for ``seed`` (``store``: the family's view; ``streams``: the RNG
    stream of each factor field, the manifest's)."""
    pick = lambda r, ids: ids[int(r.integers(len(ids)))]  # noqa: E731
    rng = np.random.default_rng([int(seed), int(k)])
    base = {
        "cabinet": pick(rng, store.ids("receptacle", "train")),
        "handle": pick(rng, store.ids("object", "train")),
        "table": pick(rng, store.ids("table", "train")),
        "front": (float(rng.uniform(*CB.TRAIN_FRONT_X)), float(rng.uniform(*CB.TRAIN_FRONT_Y))),
        "yaw": float(CB.BASE_YAW + rng.uniform(-CB.TRAIN_YAW_JITTER, CB.TRAIN_YAW_JITTER)),
    }
    d = Draft(cells=grid_cells(), obj_cell=0, rec_cell=0, yaw=0.0, objects=[base["handle"]],
              receptacles=[base["cabinet"]], table=base["table"], template=family.train_template)  # fmt: skip
    front, yaw = base["front"], base["yaw"]
    factors = dict(v.factors())
    stream = lambda name: np.random.default_rng([int(seed), int(k), streams[name]])  # noqa: E731
    for name in POOL_FACTORS:
        if factors.get(name) is not None:
            factors[name].apply(d, base, stream(name), store)
    if factors["positions"].ring > 0:
        r = stream("positions")
        front = (float(r.uniform(*CB.UNSEEN_FRONT_X[int(r.integers(2))])),
                 float(r.uniform(*CB.UNSEEN_FRONT_Y[int(r.integers(2))])))  # fmt: skip
        yaw = float(CB.BASE_YAW + r.choice((-1, 1)) * r.uniform(*CB.UNSEEN_YAW_JITTER))
    cab = CB.get_cabinet(d.receptacles[0])
    centre = CB.cabinet_centre(front, yaw, cab.depth)
    objects, xy, yaws = [d.objects[0]], [(0.0, 0.0)], [0.0]  # the handle's pose is the cabinet's
    if factors.get("distractor") is not None:
        objects, xy, yaws = _distractor(factors["distractor"], stream("distractor"), store, cab, centre, yaw,
                                        (objects, xy, yaws))  # fmt: skip
    qpos = (0.0,) * 7
    if factors.get("robot_init") is not None:
        rows = RobotInit.table() * factors["robot_init"].scale
        qpos = CB.clear_robot_offset(stream("robot_init"), rows, cab, centre, yaw)
    reposition = None
    if factors.get("reposition") is not None:
        reposition = Reposition(int(factors["reposition"].at_step), (0.0, 0.0))  # xy unused: the push-back
    instruction = d.template.format(object=store.name(d.objects[0]), receptacle=store.name(d.receptacles[0]))
    return EpisodeSpec(
        objects=tuple(objects), receptacles=(cab.id,), table=d.table, object_xy=tuple(xy), object_yaw=tuple(yaws),
        receptacle_xy=((float(centre[0]), float(centre[1])),), receptacle_yaw=(float(yaw),),
        instruction=instruction, qpos_offset=tuple(float(x) for x in qpos), overlay=d.overlay,
        reposition=reposition, meta={"variant": v.name, "seed": int(seed), "episode": int(k), "matched": "layout"},
    )  # fmt: skip


def _distractor(factor, rng, store, cab, centre, yaw: float, placed):
    """A base-pack object in front of the cabinet, beside the drawer's path on the robot's side (in view)."""
    if factor.kind != "object":
        raise VariantError(f"the drawer families take object distractors only (got kind={factor.kind!r}): a "
                           "cabinet has one drawer; use Distractor('object', ...)")  # fmt: skip
    objects, xy, yaws = placed
    base = getattr(store, "base", store)  # distractors are the base pack's objects, not handles
    pool = base.ids("object", factor.pool)
    obj = pool[int(rng.integers(len(pool)))]
    ahead, gap = rng.uniform(*CB.DISTRACTOR_AHEAD), rng.uniform(*CB.DISTRACTOR_GAP)
    at = CB.distractor_xy(cab, centre, yaw, ahead, gap)
    return [*objects, obj], [*xy, at], [*yaws, float(rng.uniform(0, math.pi))]


def describe(name: str, factor, family) -> str:
    """A factor's description on the cabinet layout (the variant cards and ``vgb describe``)."""
    if name == "positions":
        if factor.ring == 0:
            return (f"the drawer front's centre in the training box (x in {CB.TRAIN_FRONT_X}, y in "
                    f"{CB.TRAIN_FRONT_Y} m), facing +x (away from the robot) within +-{CB.TRAIN_YAW_JITTER} rad")  # fmt: skip
        return (f"the drawer front's centre just outside the training box (x in {CB.UNSEEN_FRONT_X}, y in "
                f"{CB.UNSEEN_FRONT_Y} m), yaw {CB.UNSEEN_YAW_JITTER} rad off facing +x, either side")  # fmt: skip
    if name == "objects":
        return f"handle from the {factor.split} handles"
    if name == "receptacles":
        return f"cabinet from the {factor.split} cabinets"
    if name == "distractor":
        return (
            f"plus one object from the base pack's {factor.pool} pool in front of the cabinet, beside the "
            "drawer's path (not named)"
        )
    if name == "robot_init":
        return factor.describe() + "; a row is re-drawn until the hand starts clear of the cabinet"
    if name == "reposition":
        back = "closed" if dict(family.env_kwargs)["mode"] == "open" else "fully open"
        return f"the drawer set back {back} right after step {factor.at_step} (the push-back)"
    if name == "instructions":
        return factor.describe(family)
    return factor.describe()


def n_configurations(v, store) -> int:
    """Distinct discrete choices of a drawer variant (cabinet, handle, table, ...); the placement is continuous
    and counts once."""
    n = 1
    for name, a in v.factors():
        if name == "positions" or name == "reposition":
            continue
        if name == "distractor":
            n *= len(getattr(store, "base", store).ids("object", a.pool))
        else:
            n *= a.count(store)
    return n
