"""`dcsim sweep`: run a parameter sweep (docs/sweeps.md) into a results table."""

from __future__ import annotations

import argparse
import sys

from dcsim.cli.common import EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, _fmt_s, _Progress


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
