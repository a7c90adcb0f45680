"""Golden outputs: a fingerprint of what every shipped scenario writes, to show that a change
(a refactoring, a speed-up) leaves the results byte for byte as they were.

    python -m dcsim.tools.golden --write before.json            # on the old code
    python -m dcsim.tools.golden --check before.json            # on the new: exit 1 on a change

Each scenario in scenarios/ runs (plots off) and every file it writes is hashed, except the
measured wall-clock figures (`wall_s`, `events_per_s` in summary.json, `wall_s` in run.json,
`wall_s` and `measured_iteration_s` of executed jobs in executions.csv), which differ from run
to run. Scenarios run from the repository root by relative path, so
that paths written into the outputs (events, run.json) do not depend on where the checkout
lies. `--only NAME` limits the run; `--skip NAME` leaves out a
scenario. The Philly scheduler variants run their first 30 days (the whole trace takes minutes
each under the preemptive schedulers); `--full` runs them whole.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["fingerprint", "main"]

REPO = Path(__file__).resolve().parents[2]
CUTS = {f"philly_{k}": ["horizon_s=2592000"] for k in ("easy", "las", "sjf", "srtf", "themis")}
WALL_CLOCK = {"summary.json": ("wall_s", "events_per_s"), "run.json": ("wall_s",),
              # executed jobs really train: their measured times differ from run to run
              "executions.csv": ("wall_s", "measured_iteration_s")}


def _digest(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".csv" and path.name in WALL_CLOCK:
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        data = frame.drop(columns=list(WALL_CLOCK[path.name]), errors="ignore").to_csv(
            index=False).encode()
    elif path.name in WALL_CLOCK:
        doc = json.loads(data)
        for key in WALL_CLOCK[path.name]:
            doc.pop(key, None)
        data = json.dumps(doc, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()


def fingerprint(scenario: Path, overrides: list[str] | None = None) -> dict[str, str]:
    """{file name: sha256} of what `dcsim run` writes for the scenario (no plots)."""
    from dcsim.engine import simulate
    from dcsim.world import load_scenario

    results = simulate(load_scenario(scenario, ["outputs.plots=false", *(overrides or [])]))
    with tempfile.TemporaryDirectory() as tmp:
        out = results.save(Path(tmp) / "out")
        return {p.name: _digest(p) for p in sorted(out.iterdir())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dcsim.tools.golden", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path)
    mode.add_argument("--check", type=Path)
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--skip", action="append", default=[])
    p.add_argument("--full", action="store_true", help="run the Philly variants whole")
    args = p.parse_args(argv)
    import os

    os.chdir(REPO)  # relative paths in the outputs, wherever the checkout is
    scenarios = sorted(Path("scenarios").glob("*.yaml"))
    scenarios = [s for s in scenarios if (not args.only or s.stem in args.only)
                 and s.stem not in args.skip]
    expected = json.loads(args.check.read_text()) if args.check else {}
    found: dict[str, dict[str, str]] = {}
    changed = []
    for path in scenarios:
        start = time.perf_counter()
        found[path.stem] = fingerprint(path, None if args.full else CUTS.get(path.stem))
        same = expected.get(path.stem) == found[path.stem]
        mark = "" if not args.check else ("same" if same else "CHANGED")
        print(f"{path.stem:<24}{time.perf_counter() - start:7.1f} s  {mark}", flush=True)
        if args.check and not same:
            old = expected.get(path.stem, {})
            files = sorted(f for f in set(old) | set(found[path.stem])
                           if old.get(f) != found[path.stem].get(f))
            changed.append(f"{path.stem}: {', '.join(files)}")
    if args.write:
        args.write.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.write}")
        return 0
    for line in changed:
        print(f"changed: {line}")
    print(f"{len(scenarios) - len(changed)} of {len(scenarios)} scenarios byte-identical")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
