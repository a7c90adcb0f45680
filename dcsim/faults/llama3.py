"""The `llama3` preset: the cause mix of the Llama 3 405B pre-training interruptions.

Source: Llama 3 paper (arXiv 2407.21783), table 5 (data/reference/llama3_interruptions.csv):
419 unexpected interruptions in a 54-day snapshot of training on 16,384 H100 GPUs (2,048
8-GPU servers). Each cause is mapped to a dcsim component class (`CAUSES`). The table gives
counts per cluster, not per instance, so the preset keeps the paper's rate per GPU:

    rate of class c per GPU-hour   r_c = n_c / (16,384 GPUs x 54 days x 24 h)
    expected failures in a run     E_c = r_c x G x T   (G: the scenario's GPUs, T: hours)
    per-instance MTBF (hours)      MTBF_c = I_c / (r_c x G)

where I_c is the number of instances of class c in the scenario (GPUs for gpu, gpu_memory and
software; servers for host; NICs for nic; fabric links for link). So the failure count scales
with the cluster's GPUs and the run's duration, and a 16,384-GPU run of 54 days expects exactly
the table. Within a class, each failure's cause label is drawn in proportion to the counts.
"""

from __future__ import annotations

__all__ = ["CAUSES", "GPUS", "DAYS", "class_counts", "rate_per_gpu_hour"]

GPUS = 16_384
DAYS = 54.0

# (cause as in the paper, the paper's category, interruptions, dcsim component class)
CAUSES: tuple[tuple[str, str, int, str], ...] = (
    ("Faulty GPU", "GPU", 148, "gpu"),
    ("GPU HBM3 Memory", "GPU", 72, "gpu_memory"),
    ("Software Bug", "Dependency", 54, "software"),
    ("Network Switch/Cable", "Network", 35, "link"),
    ("Host Maintenance", "Unplanned Maintenance", 32, "host"),
    ("GPU SRAM Memory", "GPU", 19, "gpu"),
    ("GPU System Processor", "GPU", 17, "gpu"),
    ("NIC", "Host", 7, "nic"),
    ("NCCL Watchdog Timeouts", "Unknown", 7, "software"),
    ("Silent Data Corruption", "GPU", 6, "gpu"),
    ("GPU Thermal Interface + Sensor", "GPU", 6, "gpu"),
    ("SSD", "Host", 3, "host"),
    ("Power Supply", "Host", 3, "host"),
    ("Server Chassis", "Host", 2, "host"),
    ("IO Expansion Board", "Host", 2, "host"),
    ("Dependency", "Dependency", 2, "software"),
    ("CPU", "Host", 2, "host"),
    ("System Memory", "Host", 2, "host"),
)


def class_counts() -> dict[str, int]:
    """Interruptions per component class in the paper's 54 days."""
    out: dict[str, int] = {}
    for _, _, n, comp in CAUSES:
        out[comp] = out.get(comp, 0) + n
    return out


def rate_per_gpu_hour(component: str) -> float:
    return class_counts().get(component, 0) / (GPUS * DAYS * 24.0)


def causes_of(component: str) -> tuple[list[str], list[float]]:
    """The cause labels of a class and their probabilities."""
    rows = [(c, n) for c, _, n, comp in CAUSES if comp == component]
    total = sum(n for _, n in rows)
    return [c for c, _ in rows], [n / total for _, n in rows]
