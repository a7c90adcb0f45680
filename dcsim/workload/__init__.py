"""Workloads: the list of jobs a scenario submits, from inline jobs, a trace, or a generator."""

from dcsim.workload.build import WorkloadResult, build_workload
from dcsim.workload.trace import read_dcsim_csv

__all__ = ["WorkloadResult", "build_workload", "read_dcsim_csv"]
