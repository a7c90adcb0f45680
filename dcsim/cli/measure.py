"""Commands about the cost model's numbers: `dcsim calibrate` (measure a device),
`dcsim collective` (time a collective) and `dcsim reference` (predicted vs published)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dcsim.cli.common import EXIT_INPUT, EXIT_OK


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
        from dcsim.tools.serving_validation import serving_markdown
        from dcsim.tools.validation import frontier_markdown, heldout_llm_markdown

        extra = (heldout_llm_markdown() + frontier_markdown()
                 + job_markdown(jobs, f"img/{plot.name}") + serving_markdown())
        out.write_text(markdown(rows, collectives, extra), encoding="utf-8")
    return EXIT_OK
