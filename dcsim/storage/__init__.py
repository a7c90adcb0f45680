"""Storage tiers, data loading and checkpoint I/O (issue 6, storage half).

`tiers`: the tiers (catalog/storage.yaml x the scenario's `storage` section) and the shared ones
as network-graph nodes; `io`: datasets, cache hit rates, checkpoint sizes and intervals;
`model`: `StorageModel`, what the engine holds (plans per job, shared-tier division).
"""

from dcsim.storage.io import (
    CheckpointPlan,
    DataPlan,
    checkpoint_bytes,
    daly_interval_s,
    dataset_of,
    hit_rates,
    young_interval_s,
)
from dcsim.storage.model import StorageModel
from dcsim.storage.tiers import (
    StorageSystem,
    Tier,
    attach_storage,
    build_storage,
    max_min_share,
    storage_node,
)

__all__ = ["StorageModel", "StorageSystem", "Tier", "attach_storage", "build_storage",
           "max_min_share", "storage_node",
           "CheckpointPlan", "DataPlan", "checkpoint_bytes", "dataset_of",
           "hit_rates", "young_interval_s", "daly_interval_s"]
