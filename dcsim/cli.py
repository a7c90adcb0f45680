"""The `dcsim` command line: files in, files out. `main(argv) -> int` is what tests call.

Heavy modules (pandas, simpy, matplotlib) are imported inside the commands, so that
`dcsim --help` starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from dcsim._version import __version__

__all__ = ["main", "entry_point"]

DEFAULT_SCENARIO = "quickstart.yaml"
EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _default_scenario() -> Path:
    return Path(str(resources.files("dcsim.scenarios").joinpath(DEFAULT_SCENARIO)))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dcsim", description=(
        "Discrete-event simulator of GPU datacenters that train AI models. "
        "Run `dcsim run` for the quickstart scenario."))
    p.add_argument("--version", action="version", version=f"dcsim {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="simulate a scenario and write its results")
    run.add_argument("scenario", nargs="?", help="scenario YAML (default: the quickstart)")
    run.add_argument("--out", help="results folder (default: the scenario's outputs.dir, "
                     "else results/NAME)")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY.PATH=VALUE", help="override a scenario value (repeatable)")
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument("--no-plots", action="store_true", help="do not draw PNG plots")
    run.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")

    val = sub.add_parser("validate", help="check scenario (or sweep) files; exit 2 on any "
                         "problem")
    val.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    val.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY.PATH=VALUE")

    est = sub.add_parser("estimate", help="step time of each job of a scenario, alone")
    est.add_argument("scenario", nargs="?", help="scenario YAML (default: the quickstart)")
    est.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY.PATH=VALUE")
    est.add_argument("--seed", type=int, help="override the scenario's seed")
    est.add_argument("--json", action="store_true", help="print JSON instead of a table")

    cal = sub.add_parser("calibrate", help="measure a device and write its cost-model profile")
    cal.add_argument("--device", choices=["host", "gpu"], default="host",
                     help="host: this machine's CPU through dcsim's numba kernels; gpu: a CUDA "
                     "GPU through numba.cuda (where one is available)")
    cal.add_argument("--out", default="profiles/host-cpu.yaml", help="profile file to write")
    cal.add_argument("--quick", action="store_true", help="a smaller grid of shapes")
    cal.add_argument("--repeats", type=_positive_int, default=3,
                     help="timings per shape (best kept)")

    col = sub.add_parser("collective", help="time a collective, nccl-tests style (algbw, busbw)")
    col.add_argument("--server", default="dgx-a100-80gb", help="catalog server type")
    col.add_argument("--nodes", type=_positive_int, default=1, help="servers taking part")
    col.add_argument("--op", default="all_reduce",
                     choices=["all_reduce", "all_gather", "reduce_scatter", "broadcast",
                              "all_to_all"])
    col.add_argument("--algorithm", default="ring",
                     choices=["ring", "tree", "hierarchical", "nvls"])
    col.add_argument("--size-bytes", type=float, action="append", metavar="S",
                     help="message size per rank (repeatable; default 1 KiB to 1 GiB, x4)")
    col.add_argument("--json", action="store_true", help="print JSON instead of a table")

    top = sub.add_parser("topology", help="describe a scenario's network (and draw it)")
    top.add_argument("scenario", nargs="?", help="scenario YAML (default: the quickstart)")
    top.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY.PATH=VALUE")
    top.add_argument("--plot", metavar="FILE", help="draw the graph into this PNG file")
    top.add_argument("--detail", action="store_true",
                     help="include each server's GPUs, NICs and PCIe/NVLink links")

    ref = sub.add_parser("reference", help="predicted vs published step times (data/reference)")
    ref.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")

    swp = sub.add_parser("sweep", help="run a parameter sweep (docs/sweeps.md); resumable")
    swp.add_argument("sweep", metavar="SWEEP", help="sweep YAML (e.g. sweeps/*.yaml)")
    swp.add_argument("--out", help="output folder (default: results/sweeps/NAME); rerun on "
                     "the same folder to resume")
    swp.add_argument("--workers", type=_positive_int, default=1, help="points run at once")
    swp.add_argument("--backend", choices=["local", "ray"], default="local",
                     help="local processes, or Ray tasks (pip install \"dcsim[ray]\")")
    swp.add_argument("--address", help="Ray cluster to join (default: start a local one)")
    swp.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")

    cat = sub.add_parser("catalog", help="list the hardware and model catalog")
    cat.add_argument("what", choices=["gpus", "servers", "nics", "models", "nets", "schedulers",
                                      "placements", "topologies"], nargs="?", default="gpus")
    return p


# ----------------------------------------------------------------------------- commands
def _scenario_path(arg: str | None) -> Path:
    return Path(arg) if arg else _default_scenario()


def _fmt_s(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _fmt_pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


def format_summary(name: str, s: dict[str, Any]) -> str:
    lines = [
        f"dcsim {__version__}: scenario {name!r}",
        f"  jobs: {s['jobs_read']} read, {s['jobs_submitted']} submitted, "
        f"{s['jobs_completed']} completed, {s['jobs_failed']} failed, "
        f"{s['jobs_rejected']} rejected, {s['jobs_unfinished']} unfinished"
        + (f", {s['jobs_not_arrived']} after the horizon" if s["jobs_not_arrived"] else "")
        + (f", {s['rows_skipped']} trace rows skipped" if s["rows_skipped"] else ""),
    ]
    if s.get("stopped_by"):
        lines.append(f"  stopped early: {s['stopped_by']} at {_fmt_s(s['sim_end_s'])}; open jobs "
                     f"end `unfinished` (jobs.csv reason)")
    for reason, count in s["rejection_reasons"].items():
        lines.append(f"    rejected ({reason}): {count}")
    if s.get("top_links"):
        busiest = ", ".join(f"{k} {v:.0%}" for k, v in list(s["top_links"].items())[:3])
        lines.append(f"  busiest links (capacity allocated to flows present, time-weighted): "
                     f"{busiest}")
    lines += [
        f"  makespan: {_fmt_s(s['makespan_s'])}   GPUs: {s['total_gpus']}   "
        f"GPU utilization: {_fmt_pct(s['gpu_utilization'])}",
        f"  JCT mean {_fmt_s(s['jct_mean_s'])}, p50 {_fmt_s(s['jct_p50_s'])}, "
        f"p95 {_fmt_s(s['jct_p95_s'])}, p99 {_fmt_s(s['jct_p99_s'])}",
        f"  queueing delay mean {_fmt_s(s['queue_mean_s'])}   mean MFU {_fmt_pct(s['mfu_mean'])}",
    ]
    if s.get("data_stall_s_total") or s.get("checkpoints_total"):
        lines.append(f"  storage: data-loading stalls {_fmt_s(s['data_stall_s_total'])} in all, "
                     f"{s['checkpoints_total']:,} checkpoints (overhead "
                     f"{_fmt_pct(s['checkpoint_overhead_fraction'])} of run time)")
    if s.get("throughput_entries"):
        src, tab = s["step_sources"], s["throughput_entries"]
        lines.append(f"  step times: {src['measured']} jobs measured, {src['interpolated']} "
                     f"interpolated, {src['model']} from the model (throughput tables: "
                     f"{tab['read']:,} entries read, {tab['accepted']:,} accepted, "
                     f"{tab['skipped']:,} skipped)")
    if s.get("failures") or s.get("interruptions"):
        lines.append(f"  failures: {s['failures']:,}, {s['interruptions']:,} job interruptions, "
                     f"{s['lost_gpu_hours']:,.1f} GPU-hours lost, goodput "
                     f"{_fmt_pct(s['goodput'])}, mean ETTR {_fmt_pct(s['ettr_mean'])}")
    lines.append(f"  {s['events_processed']:,} events in {s['wall_s']:.2f} s wall "
                 f"({s['events_per_s']:,.0f} events/s)")
    return "\n".join(lines)


class _Progress:
    def __init__(self, enabled: bool, unit: str = "jobs") -> None:
        self.enabled = enabled
        self.unit = unit
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {self.unit}")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def cmd_run(args: argparse.Namespace) -> int:
    from dcsim.engine import simulate
    from dcsim.outdir import check_output_dir, safe_folder_name, staged_output
    from dcsim.world import load_scenario

    path = _scenario_path(args.scenario)
    if _is_sweep(str(path)):
        from dcsim.errors import Problem, ScenarioError

        raise ScenarioError([Problem(str(path), None, "", "this is a sweep file (it has "
                                     "sweep keys such as `factors`/`base`): run it with "
                                     f"`dcsim sweep {path}`")])
    scenario = load_scenario(path, args.overrides, args.seed)
    out = Path(args.out or scenario.outputs.dir or f"results/{safe_folder_name(scenario.name)}")
    check_output_dir(out)  # before simulating: a bad folder is exit 2 now, not after the run
    progress = _Progress(enabled=not args.quiet and sys.stderr.isatty())
    try:
        results = simulate(scenario, progress=progress)
    finally:
        progress.close()
    with staged_output(out) as stage:  # all or nothing: never a mix of two runs' files
        results.save(stage)
        if scenario.outputs.plots and not args.no_plots:
            from dcsim.plotting import save_plots

            save_plots(results, stage)
    if not args.quiet:
        print(format_summary(scenario.name, results.summary()))
        print(f"  results written to {out}/")
    return EXIT_OK


SWEEP_ONLY_KEYS = {"factors", "base", "design", "samples", "design_seed", "seeds"}


def _is_sweep(path: str) -> bool:
    """A sweep file (docs/sweeps.md) is a mapping with `factors`; anything else is a scenario."""
    from dcsim.errors import ScenarioError
    from dcsim.textfile import read_text
    from dcsim.yamlsrc import load_yaml

    try:
        data = load_yaml(read_text(path), path)
    except ScenarioError:
        return False  # load_scenario reports it
    # keys a scenario never has: a sweep file missing `factors` is still read as a sweep,
    # so its error says `factors` is missing (not that a scenario needs a cluster)
    return isinstance(data, dict) and bool(SWEEP_ONLY_KEYS & set(data))


def _check_sweep(path: str) -> str:
    from dcsim.sweep import plan_sweep, read_sweep

    plan = plan_sweep(read_sweep(path))
    return f"{plan.sweep.spec.name}: {len(plan.points)} points, each scenario valid"


def cmd_validate(args: argparse.Namespace) -> int:
    from dcsim.errors import ScenarioError
    from dcsim.world import load_scenario

    status = EXIT_OK
    for path in args.scenarios:
        try:
            if _is_sweep(path):
                print(f"{path}: ok (sweep {_check_sweep(path)})")
                continue
            scenario = load_scenario(path, args.overrides)
            print(f"{path}: ok ({scenario.name})")
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            status = EXIT_INPUT
    return status


def memory_fields(memory: Any) -> dict[str, float]:
    return {k: getattr(memory, k) for k in ("weights", "gradients", "optimizer", "activations",
                                            "buffers")}


def cmd_estimate(args: argparse.Namespace) -> int:
    from dcsim.engine import Simulation
    from dcsim.perf.memory import memory_breakdown
    from dcsim.world import load_scenario

    scenario = load_scenario(_scenario_path(args.scenario), args.overrides, args.seed)
    sim = Simulation(scenario)
    rows = []
    for spec in sim.workload.jobs:
        est, reason = sim.estimate_alone(spec)
        memory = memory_breakdown(spec)
        row: dict[str, Any] = {"name": spec.name, "num_gpus": spec.num_gpus,
                               "memory_per_gpu_gb": memory.total / 1e9,
                               **{f"memory_{k}_gb": v / 1e9 for k, v in
                                  memory_fields(memory).items()}}
        if est is None:
            row["rejected"] = reason
        else:
            row.update(gpu_type=sim.world.placed_links(spec)[0].name, iteration_s=est.iteration_s,
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


def cmd_calibrate(args: argparse.Namespace) -> int:
    if args.device == "gpu":
        print("dcsim calibrate --device gpu (timing the kernels with numba.cuda) is not "
              "implemented yet; GPU profiles ship fitted to published measurements "
              "(python -m dcsim.tools.fit_profiles).", file=sys.stderr)
        return EXIT_INPUT
    from dcsim.perf.calibrate import calibrate_host, write_profile

    print("calibrating host-cpu: timing dcsim's kernels over a grid of shapes ...",
          file=sys.stderr)
    profile, peak, bandwidth = calibrate_host(quick=args.quick, repeats=args.repeats)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_profile(out, "host-cpu", profile, peak, bandwidth)
    prov = profile.provenance
    print(f"host-cpu: peak {peak / 1e9:.1f} GFLOP/s fp32, memory {bandwidth / 1e9:.1f} GB/s; "
          f"large matrix products reach {profile.gemm_efficiency:.0%} of peak (half of that "
          f"at {profile.gemm_half_gflop * 1e3:.3g} MFLOP, or with a side of "
          f"{profile.gemm_half_dim:.3g}); memory kernels {profile.memory_efficiency:.0%}; "
          f"{profile.kernel_overhead_s * 1e6:.1f} us per kernel, "
          f"{profile.step_overhead_s * 1e6:.0f} us per training step outside the kernels")
    table = profile.gemm_table or {"sides": [], "widths": []}
    print(f"  products are costed from the measured {len(table['sides'])} x "
          f"{len(table['widths'])} table (batch x width), interpolated; the curve above is the "
          "fallback")
    print(f"  fit: mean |error| {prov.get('mean_abs_error', float('nan')):.0%} over "
          f"{prov.get('rows', '?')} timings; written to {out} (list it under engine.profiles)")
    return EXIT_OK


def cmd_collective(args: argparse.Namespace) -> int:
    from dcsim import catalog
    from dcsim.errors import Problem, ScenarioError
    from dcsim.perf.collectives import collective

    if args.server not in catalog.servers():
        valid = ", ".join(catalog.servers())
        raise ScenarioError([Problem("--server", None, "", f"unknown server {args.server!r}; "
                                     f"valid: {valid}")])
    sizes = args.size_bytes or [float(2**k) for k in range(10, 31, 2)]
    if any(s <= 0 for s in sizes):
        raise ScenarioError([Problem("--size-bytes", None, "", "sizes must be > 0")])
    try:
        results = [collective(args.op, s, args.server, args.nodes, args.algorithm)
                   for s in sizes]
    except ValueError as exc:  # a combination the algorithm does not model (nvls)
        raise ScenarioError([Problem("--algorithm", None, "", str(exc))]) from None
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
        return EXIT_OK
    first = results[0]
    print(f"# {args.op}, {args.algorithm}, {first.ranks} ranks on {args.nodes} x {args.server}")
    print(f"#{'size (B)':>13}{'time (us)':>12}{'algbw (GB/s)':>14}{'busbw (GB/s)':>14}")
    for r in results:
        print(f"{r.size_bytes:>14.0f}{r.time_s * 1e6:>12.1f}{r.algbw_gbyte_s:>14.2f}"
              f"{r.busbw_gbyte_s:>14.2f}")
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


def cmd_reference(args: argparse.Namespace) -> int:
    from dcsim.tools.validation import collective_table, markdown, reference_table

    rows = reference_table()
    print(f"{'case':<40}{'metric':<17}{'measured':>10}{'predicted':>11}{'error':>9}")
    for r in rows:
        case = f"{r.source.split(' (')[0]}: {r.case}"
        print(f"{case:<40}{r.metric:<17}{r.measured:>10.2f}{r.predicted:>11.2f}{r.error:>+9.1%}")
    errors = [abs(r.error) for r in rows]
    print(f"mean absolute error {sum(errors) / len(errors):.1%}, max {max(errors):.1%}")
    collectives = collective_table()
    for r in collectives:
        print(f"{('NCCL: ' + r.case)[:39]:<40}{r.metric:<17}{r.measured:>10.2f}"
              f"{r.predicted:>11.2f}{r.error:>+9.1%}")
    import statistics

    from dcsim.tools.jobreport import job_markdown, job_rows, parity_plot

    jobs = job_rows()
    for source in ("gavel", "pollux"):
        errs = [abs(r.error) for r in jobs if r.case.source == source]
        print(f"small and mid-size jobs, {source}: {len(errs)} entries, median |error| "
              f"{statistics.median(errs):.1%} in sample (held out: docs/validation.md)")
    if args.markdown:
        out = Path(args.markdown)
        plot = out.parent / "img" / "parity_jobs.png"
        plot.parent.mkdir(parents=True, exist_ok=True)
        parity_plot(jobs, plot)
        extra = job_markdown(jobs, f"img/{plot.name}")
        out.write_text(markdown(rows, collectives, extra), encoding="utf-8")
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

    if args.what in ("schedulers", "placements", "topologies"):
        from dcsim.fabric import TOPOLOGIES
        from dcsim.policies import PLACEMENTS, SCHEDULERS

        registry = {"schedulers": SCHEDULERS, "placements": PLACEMENTS,
                    "topologies": TOPOLOGIES}[args.what]
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
    table = {"gpus": catalog.gpus, "servers": catalog.servers, "nics": catalog.nics}[args.what]()
    for name, spec in table.items():
        print(f"{name:<18}{spec.description}")
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    """Exit 1 when any point failed (after writing the table), 2 on a bad sweep file."""
    from dcsim.outdir import check_output_dir, safe_folder_name
    from dcsim.sweep import read_sweep, run_sweep

    sweep = read_sweep(args.sweep)
    out = check_output_dir(args.out or f"results/sweeps/{safe_folder_name(sweep.spec.name)}")
    progress = _Progress(enabled=not args.quiet and sys.stderr.isatty(), unit="points")
    try:
        table = run_sweep(sweep, out, workers=args.workers, backend=args.backend,
                          address=args.address, progress=progress)
    except ImportError as exc:  # the ray backend without ray
        progress.close()
        print(f"dcsim sweep: {exc}", file=sys.stderr)
        return EXIT_INPUT
    progress.close()
    r = table.attrs["sweep"]
    for note in r["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if not args.quiet:
        print(f"sweep {sweep.spec.name!r}: {r['total']} points, {r['run']} run, "
              f"{r['skipped']} skipped (resumed), {r['failed']} failed in "
              f"{_fmt_s(r['wall_s'])}; table written to {r['table']}")
    return EXIT_INTERNAL if r["failed"] else EXIT_OK


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "estimate": cmd_estimate,
            "calibrate": cmd_calibrate, "collective": cmd_collective, "topology": cmd_topology,
            "reference": cmd_reference, "catalog": cmd_catalog, "sweep": cmd_sweep}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    from dcsim.errors import ScenarioError, SimulationError

    try:
        return COMMANDS[args.command](args)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INPUT
    except SimulationError as exc:
        if args.debug:
            raise
        print(f"dcsim: the simulation stopped: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback (results are not written)
        print("dcsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `dcsim estimate --json | head`: the reader left
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # an internal error: say so plainly, traceback on request
        if args.debug:
            raise
        print(f"dcsim: internal error: {type(exc).__name__}: {exc} "
              "(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def entry_point() -> None:
    sys.exit(main())
