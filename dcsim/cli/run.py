"""`dcsim run` and `dcsim validate`: simulate a scenario, or check scenario and sweep files."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from dcsim._version import __version__
from dcsim.cli.common import EXIT_INPUT, EXIT_OK, _fmt_pct, _fmt_s, _Progress, _scenario_path


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _fmt_kwh(kwh: float) -> str:
    return f"{kwh / 1e3:,.2f} MWh" if kwh >= 1e3 else f"{kwh:,.1f} kWh"


def _fmt_ms(v: Any) -> str:
    return f"{v * 1e3:.1f} ms" if _finite(v) else "-"


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
    if _finite(s.get("energy_it_kwh")) and _finite(s.get("power_it_mean_kw")):
        energy = (f"  energy: {_fmt_kwh(s['energy_it_kwh'])} IT, "
                  f"{_fmt_kwh(s['energy_facility_kwh'])} facility (PUE {s['pue_mean']:.2f}), "
                  f"mean {s['power_it_mean_kw']:,.1f} kW, peak {s['power_it_peak_kw']:,.1f} kW IT")
        if _finite(s.get("carbon_kg")):
            kg = s["carbon_kg"]
            energy += f"; {kg / 1e3:,.2f} t CO2eq" if kg >= 1e3 else f"; {kg:,.1f} kg CO2eq"
        if _finite(s.get("energy_cost_usd")):
            usd = s["energy_cost_usd"]
            energy += f"; ${usd:,.0f} electricity" if abs(usd) >= 100 else (
                f"; ${usd:,.2f} electricity")
        lines.append(energy)
    if _finite(s.get("tco_usd_per_year")):
        per_job = s.get("cost_per_job_mean_usd")
        lines.append(f"  cost: capex ${s['capex_usd']:,.0f}, TCO ${s['tco_usd_per_year']:,.0f}"
                     f"/year; this run ${s['cost_run_usd']:,.2f}, "
                     f"${s['usd_per_gpu_hour']:,.2f} per GPU-hour used"
                     if _finite(s.get("usd_per_gpu_hour")) else
                     f"  cost: capex ${s['capex_usd']:,.0f}, TCO ${s['tco_usd_per_year']:,.0f}"
                     f"/year; this run ${s['cost_run_usd']:,.2f}")
        if _finite(per_job):
            lines[-1] += f", ${per_job:,.2f} per completed job"
    if s.get("deadline_jobs"):
        n = s["deadline_jobs"]
        lines.append(f"  deadlines: {n:,} job{'s' if n != 1 else ''} with one, "
                     f"{s['deadline_misses']:,} missed")
    for name, v in (s.get("service_results") or {}).items():
        slo = (f", SLO attained by {_fmt_pct(v['slo_attainment'])}"
               if _finite(v.get("slo_attainment")) else "")
        if _finite(v.get("usd_per_m_output_tokens")):
            slo += (f"; ${v['cost_usd']:,.2f}, ${v['usd_per_m_output_tokens']:,.2f} per "
                    f"million output tokens")
        lines.append(f"  service {name}: {v['requests']:,} requests, {v['served']:,} served, "
                     f"{v['dropped']:,} dropped, {v['in_flight']:,} in flight; TTFT p50 "
                     f"{_fmt_s(v['ttft_p50_s'])} p99 {_fmt_s(v['ttft_p99_s'])}, TPOT p50 "
                     f"{_fmt_ms(v['tpot_p50_s'])} p99 {_fmt_ms(v['tpot_p99_s'])}{slo}")
    if s.get("services"):
        lines.append(f"  GPU-hours: {s['serving_gpu_hours']:,.1f} serving, "
                     f"{s['training_gpu_hours']:,.1f} training")
    for note in s.get("serving_notes") or []:
        lines.append(f"  note: {note}")
    lines.append(f"  {s['events_processed']:,} events in {s['wall_s']:.2f} s wall "
                 f"({s['events_per_s']:,.0f} events/s)")
    return "\n".join(lines)


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
        results.save(stage, format=scenario.outputs.format)
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
