"""Commands that describe without simulating: `dcsim estimate` (each job's step time, alone),
`dcsim topology` (a scenario's network) and `dcsim catalog` (hardware, models, policies)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dcsim.cli.common import EXIT_OK, _scenario_path


def memory_fields(memory: Any) -> dict[str, float]:
    return {k: getattr(memory, k) for k in ("weights", "gradients", "optimizer", "activations",
                                            "buffers")}


def cmd_estimate(args: argparse.Namespace) -> int:
    from dcsim.perf.memory import memory_breakdown
    from dcsim.world import build_world, load_scenario

    scenario = load_scenario(_scenario_path(args.scenario), args.overrides, args.seed)
    world = build_world(scenario)
    rows = []
    for spec in world.workload.jobs:
        est, reason = world.estimate_alone(spec)
        memory = memory_breakdown(spec)
        row: dict[str, Any] = {"name": spec.name, "num_gpus": spec.num_gpus,
                               "memory_per_gpu_gb": memory.total / 1e9,
                               **{f"memory_{k}_gb": v / 1e9 for k, v in
                                  memory_fields(memory).items()}}
        if est is None:
            row["rejected"] = reason
        else:
            row.update(gpu_type=world.placed_links(spec)[0].name, iteration_s=est.iteration_s,
                       compute_s=est.compute_s,
                       tp_comm_s=est.tp_comm_s, bubble_s=est.bubble_s, dp_comm_s=est.dp_comm_s,
                       optimizer_s=est.optimizer_s, data_stall_s=est.data_stall_s,
                       overhead_s=est.overhead_s,
                       model_tflops_per_gpu=est.model_flop_s_per_gpu / 1e12,
                       hardware_tflops_per_gpu=est.hardware_flop_s_per_gpu / 1e12, mfu=est.mfu)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    w = max([len("job"), *(len(r["name"]) for r in rows)]) + 2
    g = max([len("GPU type"), *(len(r.get("gpu_type", "")) for r in rows)]) + 2
    print(f"{'job':<{w}}{'GPU type':<{g}}{'GPUs':>4}{'iter s':>10}{'compute':>9}{'TP comm':>9}"
          f"{'bubble':>9}{'DP comm':>9}{'optim':>8}{'TFLOP/s':>9}{'HW':>7}{'MFU':>7}{'mem GB':>8}")
    for r in rows:
        if "rejected" in r:
            print(f"{r['name']:<{w}}{'-':<{g}}{r['num_gpus']:>4}  rejected: {r['rejected']}")
            continue
        print(f"{r['name']:<{w}}{r['gpu_type']:<{g}}{r['num_gpus']:>4}{r['iteration_s']:>10.4f}"
              f"{r['compute_s']:>9.4f}"
              f"{r['tp_comm_s']:>9.4f}{r['bubble_s']:>9.4f}{r['dp_comm_s']:>9.4f}"
              f"{r['optimizer_s']:>8.4f}{r['model_tflops_per_gpu']:>9.1f}"
              f"{r['hardware_tflops_per_gpu']:>7.1f}{r['mfu']:>7.1%}{r['memory_per_gpu_gb']:>8.1f}")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from dcsim.cli.common import _Progress
    from dcsim.tools.plan import describe, plan

    progress = _Progress(enabled=not args.json and sys.stderr.isatty(), unit="configurations")
    try:
        result = plan(args.model, args.gpus, args.server, args.global_batch, args.precision,
                      seq_len=args.seq_len, progress=progress)
    finally:
        progress.close()
    if args.json:
        print(json.dumps({"model": result.model, "gpus": result.gpus, "server": result.server,
                          "gpu_type": result.gpu_type, "global_batch": result.global_batch,
                          "precision": result.precision, "seq_len": result.seq_len,
                          "considered": result.considered,
                          "skipped": dict(result.skipped), "rejected": dict(result.rejected),
                          "fits": result.rows}, indent=2))
        return EXIT_OK
    print(describe(result, args.top))
    return EXIT_OK


def cmd_topology(args: argparse.Namespace) -> int:
    from dcsim.world import build_world, load_scenario

    scenario = load_scenario(_scenario_path(args.scenario), args.overrides)
    network = build_world(scenario).network
    graph = network.detailed if args.detail else network.graph
    kinds: dict[str, int] = {}
    for _, kind in graph.nodes(data="kind"):
        kinds[kind] = kinds.get(kind, 0) + 1
    bandwidths = [d["bandwidth_byte_s"] / 1e9 for _, _, d in graph.edges(data=True)]
    plural = {"server": "servers", "switch": "switches", "gpu": "GPUs", "nic": "NICs",
              "pcie-switch": "PCIe switches", "nvswitch": "NVSwitches", "cpu": "CPUs"}
    print(f"{scenario.topology.kind}: "
          + ", ".join(f"{n} {plural.get(k, k)}" for k, n in sorted(kinds.items()))
          + f", {graph.number_of_edges()} links of {min(bandwidths):.1f} to "
          f"{max(bandwidths):.1f} GB/s per direction")
    if args.plot:
        from matplotlib.figure import Figure

        from dcsim.plotting import topology

        ax = topology(graph, ax=Figure(figsize=(9, 6), layout="constrained").add_subplot())
        ax.figure.savefig(args.plot, dpi=110)
        print(f"  drawn to {args.plot}")
    return EXIT_OK


def first_sentence(doc: str) -> str:
    """A docstring's first sentence, whole: joined across its lines, ending at the first
    full stop outside parentheses (or the end of its first paragraph)."""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    depth = 0
    for i, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if c == "." and depth == 0 and (i + 1 == len(text) or text[i + 1] == " ") \
                and not text[max(0, i - 4):i + 1].endswith(("e.g.", "i.e.", " al.")):
            return text[:i + 1]
    return text.rstrip(":;,")


def _listing(name: str, text: str, width: int = 16) -> str:
    """`name` and `text` in two columns, the text wrapped under itself (never cut)."""
    import textwrap

    return textwrap.fill(text, 100, initial_indent=f"{name:<{width}}",
                         subsequent_indent=" " * width)


def cmd_catalog(args: argparse.Namespace) -> int:
    from dcsim import catalog

    if args.what in ("schedulers", "placements", "topologies", "step-models", "flow-fabrics"):
        from dcsim.fabric import TOPOLOGIES
        from dcsim.fabric.flows import FLOW_FABRICS
        from dcsim.perf.select import STEP_MODELS
        from dcsim.policies import PLACEMENTS, SCHEDULERS

        registry = {"schedulers": SCHEDULERS, "placements": PLACEMENTS,
                    "topologies": TOPOLOGIES, "step-models": STEP_MODELS,
                    "flow-fabrics": FLOW_FABRICS}[args.what]
        for name in registry:
            print(_listing(name, first_sentence(registry.get(name).__doc__ or "")))
        return EXIT_OK
    if args.what == "models":
        presets = catalog.model_presets()
        w = max(len(n) for n in presets) + 2
        print(f"{'name':<{w}}{'kind':<10}specification")
        for name, model in presets.items():
            spec = {k: v for k, v in model.items() if k not in ("kind", "name")}
            text = ", ".join(f"{k} {v}" for k, v in spec.items())
            print(f"{name:<{w}}{model.get('kind', ''):<10}{text}")
        return EXIT_OK
    if args.what == "nets":
        from dcsim.perf.nets import NETS

        for name in NETS:
            builder = NETS.get(name)
            fields = ", ".join(f"{k}={v.default!r}" for k, v in builder.Params.model_fields
                               .items())
            print(f"{name:<20}{builder.description}\n{'':<20}params: {fields}")
        return EXIT_OK
    if args.what in ("power", "prices"):
        return _power_or_prices(args.what)
    table = {"gpus": catalog.gpus, "servers": catalog.servers, "nics": catalog.nics}[args.what]()
    for name, spec in table.items():
        print(f"{name:<18}{spec.description}")
    return EXIT_OK


def _power_or_prices(what: str) -> int:
    """`dcsim catalog power`: each GPU's board and idle power, each server's host power;
    `dcsim catalog prices`: each server's and GPU's price (sources: catalog/power.yaml and
    catalog/cost.yaml; docs/energy.md)."""
    from dcsim import catalog
    from dcsim.energy.cost import CostModel
    from dcsim.energy.model import PowerModel

    if what == "power":
        model = PowerModel()
        print(f"{'GPU':<18}{'board W':>9}{'idle W':>8}")
        for name in catalog.gpus():
            g = model.gpu(name)
            print(f"{name:<18}{g.tdp_w:>9,.0f}{g.idle_w:>8,.0f}")
        print(f"\n{'server':<18}{'host idle W':>12}{'host busy W':>12}")
        for name in catalog.servers():
            h = model.host(name)
            print(f"{name:<18}{h.idle_w:>12,.0f}{h.busy_w:>12,.0f}")
        return EXIT_OK
    cost = CostModel()
    print(f"{'server':<18}{'USD':>10}  GPUs")
    for name, spec in catalog.servers().items():
        usd = cost.server_usd(name, spec.gpu, spec.gpus_per_server)
        print(f"{name:<18}{usd:>10,.0f}  {spec.gpus_per_server} x {spec.gpu}")
    figures = catalog.cost_figures()
    print(f"\n{'GPU board':<18}{'USD':>10}")
    for name, usd in figures["gpus"].items():
        print(f"{name:<18}{float(usd):>10,.0f}")
    life = cost.lifetime_years
    print(f"\nfacility {cost.facility_usd_per_w:g} USD/W of IT capacity; lifetimes (years): "
          + ", ".join(f"{k} {v:g}" for k, v in life.items())
          + f"; maintenance {cost.maintenance_per_year:.0%} of hardware a year")
    return EXIT_OK
