"""Task families as data: one :class:`Family` record per skill, the :data:`FAMILIES` registry and :func:`get_family`.

A family is a registered ManiSkill env plus what the variant catalog needs to build its episodes: the instruction
templates (train and unseen), which asset kinds play "object" and "receptacle" (the target: plate, target region,
cabinet, base block), the distance range between the object's and the target's cells, which catalog factors mean
something for it, its scripted oracle and its failure labels. Every family's episodes are
:class:`~vla_gen_bench.episode.EpisodeSpec` s: ``objects[0]`` is the target object, ``receptacles[0]`` the target,
``objects[1:]`` distractors.

Importing this module is cheap (no simulator) and imports no room: it is shared data, like
:mod:`vla_gen_bench.episode`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from vla_gen_bench.episode import FAILURE_LABELS, MIN_PAIR_DIST, TRAIN_TEMPLATE


class FamilyError(KeyError):
    """Unknown family name; the message says what to do."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Family:
    """One skill: its env, instructions, assets, applicable factors, oracle and outcome labels."""

    name: str
    env_id: str
    summary: str
    control: str
    """The family's in-distribution control arm (paired intervals of its variants are against it)."""
    train_template: str
    paraphrases: tuple[str, ...]
    object_kind: str = "object"
    """Which asset kind of the family's store plays the target object (and distractor objects)."""
    receptacle_kind: str = "receptacle"
    """Which asset kind plays the target (plate, target region, cabinet, base block)."""
    assets: str | None = None
    """The family's own procedural generator (a module of ``vla_gen_bench.assets`` with ``shapes()`` and
    ``pack_hash()``), None: the base pack's objects and receptacles. The family's view of a store is
    :func:`vla_gen_bench.assets.family_store.family_store`."""
    factors: tuple[str, ...] = ()
    """Field names of :class:`~vla_gen_bench.variants.Variant` whose factors mean something for this family."""
    pair_range: tuple[float, float] = (MIN_PAIR_DIST, math.inf)
    """(min, max) distance in m between the object's and the target's cells (min exclusive, max inclusive)."""
    oracle: str = "scripted"
    failure_labels: tuple[str, ...] = FAILURE_LABELS
    env_kwargs: tuple[tuple[str, object], ...] = ()
    """Extra keyword arguments of the env (e.g. the drawer's ``mode``), as (name, value) pairs."""
    disturbance: str = "reposition"
    """What the mid-episode disturbance (the ``reposition`` factor) does in this family."""
    layout: str = "grid"
    """How its episodes are laid out: ``grid`` (object and target on two cells of the position grid) or ``cabinet``
    (one cabinet placed in front of the robot, :mod:`vla_gen_bench.variants.drawer`)."""
    notes: tuple[str, ...] = field(default=(), compare=False)

    def templates(self, split: str) -> tuple[str, ...]:
        """Instruction templates of a pool: ``train`` (the one training template) or ``unseen`` (paraphrases)."""
        return (self.train_template,) if split == "train" else self.paraphrases


ALL_FACTORS = ("positions", "table", "objects", "receptacles", "distractor", "instructions", "overlay",
               "robot_init", "reposition")  # fmt: skip

# Paraphrases of the training template, written for this benchmark (the training template is never among them).
# {object} and {receptacle} are the asset display names.
PUT_ON_PARAPHRASES = (
    "place the {object} on the {receptacle}",
    "set the {object} down on the {receptacle}",
    "move the {object} onto the {receptacle}",
    "pick up the {object} and put it on the {receptacle}",
    "could you put the {object} on the {receptacle}?",
    "the {object} goes on the {receptacle}",
    "grab the {object} and leave it on the {receptacle}",
    "transfer the {object} to the {receptacle}",
    "I want the {object} on the {receptacle}",
    "please place the {object} onto the {receptacle}",
    "lift the {object} and drop it on the {receptacle}",
    "get the {object} onto the {receptacle}, please",
    "make the {object} rest on the {receptacle}",
    "on the {receptacle}, place the {object}",
    "take the {object} over to the {receptacle} and set it down",
    "your task: {object} on top of {receptacle}",
    "relocate the {object} so that it sits on the {receptacle}",
    "carry the {object} to the {receptacle}",
    "can you move the {object} to the {receptacle}",
    "put the {object} on top of the {receptacle}",
)

PUSH_PARAPHRASES = (
    "slide the {object} onto the {receptacle}",
    "push the {object} so that it ends up on the {receptacle}",
    "shove the {object} into the {receptacle}",
    "nudge the {object} over to the {receptacle}",
    "move the {object} onto the {receptacle} without lifting it",
    "get the {object} into the {receptacle} by pushing it",
    "the {object} should end up inside the {receptacle}; push it there",
    "please push the {object} until it sits on the {receptacle}",
    "slide the {object} across the table into the {receptacle}",
    "could you push the {object} onto the {receptacle}?",
)
PUSH_LABELS = ("success", "never_touched", "wrong_object", "overshot", "timeout")
"""Outcome labels of the push family: success; never_touched (the target never moved); wrong_object (a distractor
was moved, the target was not pushed in); overshot (the target was inside the region, or past it, and left it);
timeout (pushed, but not in the region at the end)."""

STACK_PARAPHRASES = (
    "put the {object} on top of the {receptacle}",
    "place the {object} onto the {receptacle}",
    "set the {object} down on top of the {receptacle}",
    "pick up the {object} and stack it on the {receptacle}",
    "the {object} goes on top of the {receptacle}",
    "could you stack the {object} onto the {receptacle}?",
    "build a tower: the {object} on the {receptacle}",
    "lift the {object} and rest it on the {receptacle}",
    "please balance the {object} on top of the {receptacle}",
    "move the {object} so that it sits on the {receptacle}",
)
STACK_LABELS = ("success", "never_grasped", "wrong_object", "dropped", "misplaced", "toppled", "timeout")
"""Outcome labels of the stack family (``VgbStack-v1``'s, test): success; never_grasped (the piece was never
grasped); wrong_object (another object was grasped, the piece never); dropped (released away from the base);
misplaced (released at the base but not resting on its top); toppled (resting on top at some step, not at the end);
timeout (still held at the end, or on top for fewer than the stable steps)."""

# The drawer's instructions ({receptacle}: the cabinet's name, {object}: the handle's), as in
# vla_gen_bench.assets.cabinets.TEMPLATES (its four first) and six more; one family per mode, since the mode is fixed when the env is built.
DRAWER_PARAPHRASES = {
    "open": ("pull the {receptacle}'s drawer out", "slide the drawer of the {receptacle} open",
             "pull out the drawer with the {object}", "open the {receptacle}'s drawer by its {object}",
             "could you open the {receptacle}'s drawer?", "grab the {object} and pull the drawer open",
             "the drawer of the {receptacle} should be open; pull it out",
             "please pull open the drawer of the {receptacle}", "use the {object} to open the {receptacle}'s drawer",
             "get the {receptacle}'s drawer open"),
    "close": ("push the {receptacle}'s drawer shut", "slide the drawer of the {receptacle} closed",
              "push in the drawer with the {object}", "shut the {receptacle}'s drawer",
              "could you close the {receptacle}'s drawer?", "push the open drawer of the {receptacle} back in",
              "the drawer of the {receptacle} should be closed; push it in",
              "please push the drawer of the {receptacle} shut", "slide the drawer with the {object} all the way in",
              "get the {receptacle}'s drawer closed"),
}  # fmt: skip
DRAWER_LABELS = ("success", "never_touched", "no_progress", "partial", "undone")
"""Outcome labels of the drawer families (``VgbDrawer-v1``'s ``DRAWER_FAILURE_LABELS``, test): success; the robot
never touched the drawer; touched it, moved it less than 10 % of its travel; moved it, not past the threshold; past
the threshold at some step but not at the end."""


def _drawer(mode: str) -> Family:
    return Family(f"drawer_{mode}", "VgbDrawer-v1", f"{mode} the drawer of a procedural cabinet (articulated)",
                  control=f"drawer_{mode}_ind", train_template=f"{mode} the drawer of the {{receptacle}}",
                  paraphrases=DRAWER_PARAPHRASES[mode], object_kind="handle", receptacle_kind="cabinet",
                  assets="cabinets", factors=ALL_FACTORS, oracle="scripted", failure_labels=DRAWER_LABELS,
                  env_kwargs=(("mode", mode),), layout="cabinet",
                  disturbance=f"the drawer set back {'closed' if mode == 'open' else 'fully open'}",
                  notes=("object = the handle, receptacle = the cabinet, distractors = the base pack's objects",))  # fmt: skip


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("put_on", "VgbPutOnReceptacle-v1", "pick an object and put it on a receptacle (RL4VLA's task)",
               control="ind", train_template=TRAIN_TEMPLATE, paraphrases=PUT_ON_PARAPHRASES, factors=ALL_FACTORS,
               notes=("the paper's family; its catalog lines and hashes are the committed ones",)),
        Family("push", "VgbPush-v1", "push a sliding object onto a marked target region (non-prehensile)",
               control="push_ind", train_template="push the {object} onto the {receptacle}",
               paraphrases=PUSH_PARAPHRASES, object_kind="push_object", receptacle_kind="region", assets="push",
               factors=ALL_FACTORS, pair_range=(0.10, 0.20), oracle="scripted", failure_labels=PUSH_LABELS),
        Family("stack", "VgbStack-v1", "stack a piece on top of a base block, stable (precise placement)",
               control="stack_ind", train_template="stack the {object} on the {receptacle}",
               paraphrases=STACK_PARAPHRASES, object_kind="stack_object", receptacle_kind="base", assets="stack",
               factors=ALL_FACTORS, pair_range=(0.12, 0.22), oracle="scripted", failure_labels=STACK_LABELS),
        _drawer("open"),
        _drawer("close"),
    )
}  # fmt: skip
DEFAULT_FAMILY = "put_on"


def get_family(name: str | Family) -> Family:
    """The family record of ``name``.

    Raises:
        FamilyError: unknown name (with a did-you-mean and the allowed names).
    """
    if isinstance(name, Family):
        return name
    try:
        return FAMILIES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(FAMILIES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise FamilyError(
            f"unknown family {name!r}{hint} (allowed: {', '.join(FAMILIES)}; see 'vgb list')"
        ) from None


def all_failure_labels() -> tuple[str, ...]:
    """Every family's outcome labels, put_on's first (the order of report columns), each once."""
    out: list[str] = []
    for f in FAMILIES.values():
        out += [lab for lab in f.failure_labels if lab not in out]
    return tuple(out)
