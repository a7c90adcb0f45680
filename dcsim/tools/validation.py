"""Predicted vs published: the step-time model against data/reference.

`reference_cases()` turns every row of the Megatron A100 (Korthikanti et al.) and Megatron-Core
H100 tables into a job, its GPU and the links of its placement, through the same code path a
simulation uses (scenario -> cluster -> placement -> network). `reference_table(model)` predicts
each row; `markdown()` renders docs/validation.md. The fitting script
(dcsim.tools.fit_profiles) uses the same cases.

What the published tables do not state is assumed, the same way for every row of a table:
A100 (2022): no flash attention, sequence parallelism exactly in the "selective" runs;
H100 (Megatron-Core, "overlap of DP/TP/PP communication on"): flash attention, sequence
parallelism and overlapped tensor-parallel communication whenever tp > 1, the distributed
optimizer (ZeRO-1) with overlapped gradient and weight communication, gradients reduced in
bf16, micro-batch 1, no recompute, the 1F1B schedule. (With fp32 gradient reduction no single
H100 profile gets the max error under 13%: the tensor-parallel-only rows would pay twice the
exposed gradient traffic they evidently do not.)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dcsim.catalog import GpuSpec
from dcsim.fabric.network import RingPath
from dcsim.scenario import JobSpec

__all__ = ["Case", "Row", "reference_cases", "reference_table", "collective_table", "markdown",
           "reference_dir", "NCCL_ROWS", "heldout_llm_cases", "heldout_llm_markdown",
           "FrontierRow", "frontier_rows", "frontier_markdown"]


@dataclass(frozen=True)
class Case:
    source: str
    case: str
    metric: str  # "iteration s" or "TFLOP/s per GPU"
    measured: float
    job: JobSpec
    gpu: GpuSpec
    ring: RingPath

    def predict(self, model: Any) -> float:
        est = model.estimate(self.job, self.gpu, self.ring)
        return est.iteration_s if self.metric == "iteration s" else est.model_flop_s_per_gpu / 1e12


@dataclass(frozen=True, slots=True)
class Row:
    source: str
    case: str
    metric: str
    measured: float
    predicted: float

    @property
    def error(self) -> float:
        return (self.predicted - self.measured) / self.measured


def reference_dir() -> Path:
    """data/reference of a source checkout (the tables are not package data)."""
    here = Path(str(resources.files("dcsim"))).parent / "data" / "reference"
    if not here.is_dir():
        raise FileNotFoundError(f"reference tables not found at {here} "
                                "(a source checkout has them)")
    return here


def _placed(server: str, gpus: int, job: dict, fits: bool = True
            ) -> tuple[JobSpec, GpuSpec, RingPath]:
    """The job, its GPU and links as a run places it on `gpus` GPUs of `server`; `fits`:
    only if it fits in memory (else placed regardless)."""
    from dcsim import catalog
    from dcsim.world import build_world, scenario_from_dict

    scenario = scenario_from_dict({
        "name": "reference",
        "cluster": {"servers": [{"type": server, "count": max(1, gpus // 8)}]},
        "workload": {"jobs": [job]},
        "engine": {"step_model": "first-order"},
    })
    assert scenario.workload.jobs is not None
    spec = scenario.workload.jobs[0]
    world = build_world(scenario)
    if fits:
        gpu, ring = world.placed_links(spec)
    else:
        gpu, ring = world.links_of(world.empty_placement(spec, (catalog.servers()[server].gpu,)))
    return spec, gpu, ring


def _gpt(r: dict, **extra: object) -> dict:
    return {"kind": "gpt", "layers": int(r["layers"]), "hidden": int(r["hidden"]),
            "heads": int(r["heads"]), "seq_len": int(r["seq"]), "vocab": int(r["vocab"]),
            **extra}


def _a100_cases(path: Path) -> list[Case]:
    cases = []
    with path.open() as f:
        for r in csv.DictReader(f):
            for mode, column in (("full", "iter_s_full_recompute"),
                                 ("selective", "iter_s_selective_seqpar")):
                job = {"name": r["model"],
                       "model": _gpt(r, ffn_hidden=int(r["ffn"]), flash_attention=False),
                       "parallelism": {"tp": int(r["tp"]), "pp": int(r["pp"]), "dp": 1,
                                       "micro_batch": int(r["micro_batch"]),
                                       "virtual_stages": int(r["virtual_stages"]),
                                       "recompute": mode,
                                       "sequence_parallel": mode == "selective"},
                       "global_batch": int(r["global_batch"]), "precision": "fp16",
                       "iterations": 1}
                spec, gpu, ring = _placed("dgx-a100-80gb", int(r["gpus"]), job)
                cases.append(Case("Megatron A100 (Korthikanti et al.)", f"{r['model']} {mode}",
                                  "iteration s", float(r[column]), spec, gpu, ring))
    return cases


def _h100_cases(path: Path) -> list[Case]:
    cases = []
    with path.open() as f:
        for r in csv.DictReader(f):
            tp = int(r["tp"])
            job = {"name": r["model"], "model": _gpt(r, flash_attention=True),
                   "parallelism": {"tp": tp, "pp": int(r["pp"]), "dp": int(r["dp"]),
                                   "sequence_parallel": tp > 1, "overlap_tp_comm": tp > 1,
                                   "zero": 1, "grad_reduce_dtype": "bf16"},
                   "global_batch": int(r["global_batch"]), "precision": "bf16", "iterations": 1}
            spec, gpu, ring = _placed("dgx-h100", int(r["gpus"]), job)
            cases.append(Case("Megatron-Core H100 (README)", r["model"], "TFLOP/s per GPU",
                              float(r["tflops_per_gpu"]), spec, gpu, ring))
    return cases


def reference_cases(directory: Path | None = None) -> list[Case]:
    d = directory or reference_dir()
    return _a100_cases(d / "megatron_a100_korthikanti.csv") + _h100_cases(
        d / "megatron_h100_readme.csv")


def heldout_llm_cases(directory: Path | None = None) -> list[Case]:
    """data/reference/llm_heldout_h100.csv: NVIDIA's published Llama 3.1 pre-training step
    times on DGX H100 (never fitted to: the profile fit reads `reference_cases` only). Unstated
    settings assumed as for the Megatron-Core H100 rows (flash attention, sequence parallelism
    and overlapped tensor-parallel communication, ZeRO-1 with bf16 gradient reduction), no
    recompute, and the interleaved schedule over `virtual_stages`."""
    cases = []
    with ((directory or reference_dir()) / "llm_heldout_h100.csv").open() as f:
        for r in csv.DictReader(f):
            tp, pp, cp = int(r["tp"]), int(r["pp"]), int(r["cp"])
            gpus = int(r["gpus"])
            job = {"name": r["model"], "model": r["model"], "precision": r["precision"],
                   "parallelism": {"tp": tp, "pp": pp, "cp": cp, "dp": gpus // (tp * pp * cp),
                                   "micro_batch": int(r["micro_batch"]),
                                   "virtual_stages": int(r["virtual_stages"]),
                                   "sequence_parallel": tp > 1, "overlap_tp_comm": tp > 1,
                                   "zero": 1, "grad_reduce_dtype": "bf16"},
                   "global_batch": int(r["global_batch"]), "iterations": 1}
            spec, gpu, ring = _placed("dgx-h100", gpus, job)
            label = (f"{r['model']} {r['precision']} {gpus} GPUs TP{tp} PP{pp} CP{cp} "
                     f"VP{r['virtual_stages']} GBS {r['global_batch']}")
            cases.append(Case("NeMo 24.09 H100 (dgxc-benchmarking)", label, "iteration s",
                              float(r["step_s"]), spec, gpu, ring))
    return cases


def heldout_llm_markdown() -> list[str]:
    """docs/validation.md's held-out LLM section."""
    rows = reference_table(cases=heldout_llm_cases())
    lines = ["", "## Held out: Llama 3.1 pre-training on H100 (not fitted to)", "",
             "NVIDIA's published step times of Llama 3.1 70B and 405B with context parallelism",
             "and interleaved pipelines (data/reference/llm_heldout_h100.csv; NVIDIA/",
             "dgxc-benchmarking, NeMo 24.09, micro-batch 1, 8,192-token sequences). Nothing was",
             "fitted to them; the settings they leave unsaid are assumed as for the Megatron-Core",
             "H100 rows, with no recompute. FP8 is dcsim's FP8 recipe",
             "(docs/step-time-model.md#fp8-training): before it, with every product at the FP8",
             "peak and no casts, the FP8 rows came out 22.6% and 16.5% fast.", ""]
    lines += _table(rows)
    return lines


@dataclass(frozen=True)
class FrontierRow:
    """One row of data/reference/frontier_heldout.csv's table: a configuration (or, for
    GPU-hours, the phases of a run), measured and predicted, and the predicted memory per GPU
    of its (first) configuration."""

    source: str
    case: str
    metric: str
    measured: float
    predicted: float
    memory_gb: float
    gpu_memory_gb: float

    @property
    def error(self) -> float:
        return (self.predicted - self.measured) / self.measured


def _frontier_job(r: dict) -> dict:
    from dcsim import catalog

    model: Any = r["model"]
    if int(r["seq"]) != catalog.model_presets()[model]["seq_len"]:
        model = {**catalog.model_presets()[model], "name": model, "seq_len": int(r["seq"])}
    tp, pp, cp = int(r["tp"]), int(r["pp"]), int(r["cp"])
    uneven = {k: int(r[k]) for k in ("first_stage_layers", "last_stage_layers") if r[k]}
    return {"name": r["model"], "model": model, "precision": r["precision"],
            "parallelism": {"tp": tp, "pp": pp, "cp": cp,
                            "dp": int(r["gpus"]) // (tp * pp * cp), "ep": int(r["ep"]),
                            "micro_batch": int(r["micro_batch"]),
                            "virtual_stages": int(r["virtual_stages"]),
                            "sequence_parallel": tp > 1, "overlap_tp_comm": tp > 1,
                            "overlap_ep_comm": r["overlap_ep_comm"] == "true",
                            "zero": int(r["zero"]), "grad_reduce_dtype": "bf16", **uneven},
            "global_batch": int(r["global_batch"]), "iterations": 1}


def frontier_rows(directory: Path | None = None, model: Any = None) -> list[FrontierRow]:
    """data/reference/frontier_heldout.csv, predicted (never fitted to). Each configuration
    is placed as a run places it (`_placed`) and timed by the calibrated model; unstated
    settings as for the held-out NeMo rows (sequence parallelism and overlapped tensor-parallel
    communication with tp > 1, bf16 gradient reduction), the row's ZeRO stage, no recompute.
    Metrics:
    TFLOP/s per GPU (dcsim's model FLOPs: full s x s attention, as Megatron counts them),
    tokens/s per GPU, or GPU-hours: the run's phases (rows of one case), each its tokens /
    (tokens per second of its configuration) x its GPUs. Memory is reported, not enforced:
    a configuration that ran but that dcsim's memory model overfills shows a gap there."""
    from dcsim.perf.memory import memory_breakdown

    if model is None:
        from dcsim.perf.calibrated import CalibratedStepModel

        model = CalibratedStepModel()
    groups: dict[tuple[str, str], list[tuple[dict, float, float, float]]] = {}
    with ((directory or reference_dir()) / "frontier_heldout.csv").open() as f:
        for i, r in enumerate(csv.DictReader(f)):
            spec, gpu, ring = _placed(r["server"], int(r["gpus"]), _frontier_job(r),
                                      fits=False)
            est = model.estimate(spec, gpu, ring)
            tokens_s = spec.global_batch * spec.model.seq_len / est.iteration_s
            value = {"TFLOP/s per GPU": est.model_flop_s_per_gpu / 1e12,
                     "tokens/s per GPU": tokens_s / spec.num_gpus}.get(r["metric"])
            if r["metric"] == "GPU-hours":
                value = float(r["tokens"]) / tokens_s * spec.num_gpus / 3600
            if value is None:
                raise ValueError(f"frontier_heldout.csv row {i + 2}: unknown metric "
                                 f"{r['metric']!r}")
            memory = memory_breakdown(spec).total / 1e9
            key = (r["source"], r["case"]) if r["metric"] == "GPU-hours" else (str(i), "")
            groups.setdefault(key, []).append(
                (r, value, memory, gpu.memory_bytes / 1e9))
    rows = []
    for parts in groups.values():
        r, _, memory, capacity = parts[0]
        case = r["case"]
        if r["metric"] != "GPU-hours":
            case = (f"{case} {r['precision']} {r['gpus']} GPUs TP{r['tp']} PP{r['pp']} "
                    f"CP{r['cp']} EP{r['ep']} VP{r['virtual_stages']} GBS {r['global_batch']}")
        rows.append(FrontierRow(r["source"], case, r["metric"], float(r["measured"]),
                                sum(p[1] for p in parts), memory, capacity))
    return rows


def frontier_markdown(rows: list[FrontierRow] | None = None) -> list[str]:
    """docs/validation.md's frontier section."""
    rows = rows if rows is not None else frontier_rows()
    lines = ["", "## Held out: frontier pre-training runs (not fitted to)", "",
             "Llama 3 405B as Meta ran it, DeepSeek-V3 as DeepSeek ran it, and NVIDIA's FP8",
             "recipes on H100 (data/reference/frontier_heldout.csv, with sources in",
             "data/reference/SOURCES.md). Assumptions each row needs:",
             "",
             "- Llama 3 (Table 4): micro-batch 1, the interleaved schedule with 8 virtual stages",
             "  (128 one-layer slots, the first and last empty: the paper's one layer fewer on",
             "  the first and last stages), no recompute (the paper: none at 8K), ZeRO-2 (its",
             "  FSDP shards gradients and optimizer states, not the weights); the 128K row's",
             "  DP is printed as 4, taken as 8 so that its GPUs and tokens add up. TFLOP/s count",
             "  dcsim's model FLOPs (full s x s attention); if Meta counted causal attention as",
             "  half, the 128K row's measured work is ~40% less than counted here.",
             "- Llama 3.1 405B GPU-hours: 14.8T tokens at 8K on the 16,384-GPU configuration and",
             "  ~800B at 128K on the CP-16 one. The model card's 30.84M hours are all the GPU",
             "  time of training (the paper: > 90% effective training time; post-training not",
             "  separated), so the prediction should fall below it.",
             "- DeepSeek-V3 GPU-hours: 14.8T tokens at the full batch (15,360 x 4,096; the",
             "  ramp over the first 469B tokens not modelled), PP 16 as 4 + 14 x 4 + 1 layers",
             "  (the MTP module and head on the last stage), EP 64 over 8 servers, ZeRO-1 DP 128,",
             "  no TP, FP8, all-to-alls overlapped (DualPipe), no recompute (DeepSeek recomputes",
             "  only norms and MLA up-projections). Expert traffic force-balanced in NVIDIA's",
             "  DeepSeek-V3 row; its 61 layers on 32 virtual stages as 1 + 30 x 2 + 0.",
             "- FP8 is dcsim's FP8 recipe (docs/step-time-model.md#fp8-training): the layers'",
             "  products at the FP8 peak, attention, output layer and router at the BF16 one,",
             "  each product's input and output gradient cast (delayed scaling). NVIDIA's 25.11",
             "  rows use current scaling (FP8-CS: one more pass per cast, not modelled).",
             "- Memory is dcsim's for the configuration; where it exceeds the GPU (marked), the",
             "  run fitted by means dcsim does not model (DeepSeek's FP8 activation caching and",
             "  partial recompute; Meta's memory tuning), and the row is timed regardless.",
             "",
             "| source | case | metric | measured | predicted | error | memory GB |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        over = " (over)" if r.memory_gb > r.gpu_memory_gb else ""
        lines.append(f"| {r.source} | {r.case} | {r.metric} | {r.measured:,.0f} | "
                     f"{r.predicted:,.0f} | {r.error:+.1%} | {r.memory_gb:.0f}{over} |")
    errors = [abs(r.error) for r in rows]
    lines += ["", f"Mean absolute error {sum(errors) / len(errors):.1%}, "
              f"max {max(errors):.1%}, over {len(rows)} rows.", "",
              "Reading it: dcsim predicts Meta's Llama 3 405B at the efficiency of NVIDIA's",
              "benchmark runs (the held-out 405B BF16 row above: 55.8% MFU measured, +0.8%),",
              "while Meta's production run reached 41-43%; the ~26% is what that run paid",
              "beyond a benchmark (a 16K-GPU RoCE fabric oversubscribed 1:7 above its pods,",
              "stragglers, its own framework), which a job alone on dcsim's links does not",
              "see. The GPU-hour rows are totals over whole runs, so they also carry restarts",
              "and lost work (Llama 3: > 90% effective training time) that a step time does not."]
    return lines


def reference_table(model: Any = None, cases: list[Case] | None = None) -> list[Row]:
    """Every reference row, measured and predicted (by default with the calibrated model)."""
    if model is None:
        from dcsim.perf.calibrated import CalibratedStepModel

        model = CalibratedStepModel()
    return [Row(c.source, c.case, c.metric, c.measured, c.predict(model))
            for c in (cases if cases is not None else reference_cases())]


# NCCL bus bandwidths stated by the NCCL maintainers (data/reference/README.md section 3):
# (case, server, nodes, op, size, measured busbw GB/s). The rows' large-message bus bandwidths
# also set the link efficiencies of the profiles (fit.LINK_EFFICIENCY), so these rows check the
# collective decomposition end to end (ring factors, NIC aggregation, latency), not those
# efficiencies; the all-to-all row is an independent check. The NVLS row sets
# collectives.NVLS_EFFICIENCY (a fit: it shows the decomposition, it checks nothing).
# (case, server, nodes, op, algorithm, size, busbw)
NCCL_ROWS = (
    ("A100 x8, one node, all-reduce 1 GiB", "dgx-a100-80gb", 1, "all_reduce", "ring", 2**30,
     230.0),
    ("DGX-A100 x4 nodes, all-reduce 1 GiB", "dgx-a100-80gb", 4, "all_reduce", "ring", 2**30,
     192.0),
    ("H100 x8, one node, ring all-reduce 1 GiB", "dgx-h100", 1, "all_reduce", "ring", 2**30,
     370.0),
    ("H100 x8, one node, NVLS all-reduce 1 GiB (fit)", "dgx-h100", 1, "all_reduce", "nvls",
     2**30, 480.0),
    ("DGX-H100 x4 nodes, all-to-all 1 GiB (N/(N-1) x 47 GB/s)", "dgx-h100", 4, "all_to_all",
     "ring", 2**30, 4 / 3 * 47.0),
)


def collective_table() -> list[Row]:
    """The NCCL rows: measured vs predicted bus bandwidth."""
    from dcsim.perf.collectives import collective

    return [Row("NCCL maintainers", case, "busbw GB/s", busbw,
                collective(op, size, server, nodes, algorithm).busbw_gbyte_s)
            for case, server, nodes, op, algorithm, size, busbw in NCCL_ROWS]


def _table(rows: list[Row]) -> list[str]:
    lines = ["| source | case | metric | measured | predicted | error |",
             "|---|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.source} | {r.case} | {r.metric} | {r.measured:.2f} | "
                     f"{r.predicted:.2f} | {r.error:+.1%} |")
    errors = [abs(r.error) for r in rows]
    lines += ["", f"Mean absolute error {sum(errors) / len(errors):.1%}, "
              f"max {max(errors):.1%}, over {len(rows)} rows."]
    return lines


def markdown(rows: list[Row], collectives: list[Row] | None = None,
             extra: list[str] | None = None) -> str:
    lines = [
        "# Validation: predicted vs published",
        "",
        "Generated by `dcsim reference --markdown docs/validation.md`; a test checks that this",
        "file matches what the code predicts, so regenerate it whenever the model changes.",
        "",
        "Model: the calibrated step-time model (docs/step-time-model.md) with one fitted device",
        "profile per GPU type (dcsim/catalog/profiles.yaml, written by `python -m",
        "dcsim.tools.fit_profiles`). Assumptions for what the tables leave unsaid are listed in",
        "dcsim/tools/validation.py. Target: mean absolute error <= 5%, max <= 10%.",
        "",
    ]
    lines += _table(rows)
    if collectives:
        lines += ["", "## Collectives (`dcsim collective`)", "",
                  "Bus bandwidth of one collective over all GPUs of the servers, as nccl-tests",
                  "reports it, against the NCCL maintainers' figures (reference section 3). The",
                  "large-message rows also set the profiles' link efficiencies, so they check the",
                  "decomposition (ring factors, NIC aggregation, latency); the all-to-all row is",
                  "independent; the NVLS row sets the NVLS efficiency (a fit, marked so).",
                  "Target: mean absolute error <= 10%.", ""]
        lines += _table(collectives)
    lines += extra or []
    lines.append("")
    return "\n".join(lines)
