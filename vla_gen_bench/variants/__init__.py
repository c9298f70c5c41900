"""Generalization variants as data: factors, the catalog (one line per variant), suites and episode manifests.

Importing this package is cheap (no simulator); ``gym.make("VgbPutOnReceptacle-v1", variant="unseen_table")``
builds any catalog line once ``vla_gen_bench.envs`` is imported.
"""

from vla_gen_bench.variants.catalog import (  # noqa: F401
    AXES,
    CATALOG,
    CONTROL,
    FAMILY_CATALOGS,
    SUITES,
    VARIANTS,
    Variant,
    VariantError,
    catalog_hash,
    families_of,
    family_catalog_hash,
    get_suite,
    get_variant,
    suite_hash,
)
from vla_gen_bench.variants.manifest import (  # noqa: F401
    ManifestEpisode,
    TrainingPoolError,
    check_training_spec,
    episode,
    manifest,
    manifest_hash,
)
