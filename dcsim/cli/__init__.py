"""The `dcsim` command line: files in, files out. `main(argv) -> int` is what tests call.

Heavy modules (pandas, simpy, matplotlib) are imported inside the commands, so that
`dcsim --help` starts fast.

The commands live in modules by group: `run` (run, validate), `sweep`, `listings` (estimate,
topology, catalog), `measure` (calibrate, collective, reference), and `common` (exit codes and
helpers they share); this module builds the parser and dispatches.
"""

from __future__ import annotations

import argparse
import sys

from dcsim._version import __version__
from dcsim.cli.common import DEFAULT_SCENARIO as DEFAULT_SCENARIO
from dcsim.cli.common import EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK
from dcsim.cli.listings import cmd_catalog, cmd_estimate, cmd_plan, cmd_topology
from dcsim.cli.listings import first_sentence as first_sentence
from dcsim.cli.listings import memory_fields as memory_fields
from dcsim.cli.measure import cmd_calibrate, cmd_collective, cmd_reference
from dcsim.cli.run import SWEEP_ONLY_KEYS as SWEEP_ONLY_KEYS
from dcsim.cli.run import cmd_run, cmd_validate
from dcsim.cli.run import format_summary as format_summary
from dcsim.cli.sweep import cmd_sweep

__all__ = ["main", "entry_point"]


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

    pln = sub.add_parser("plan", help="the fastest parallelism settings for a model on N GPUs")
    pln.add_argument("model", help="a transformer preset (`dcsim catalog models`)")
    pln.add_argument("--gpus", type=_positive_int, required=True, help="GPUs in all")
    pln.add_argument("--server", default="dgx-h100", help="server type (default: dgx-h100)")
    pln.add_argument("--global-batch", type=_positive_int, default=1024,
                     help="sequences per iteration (default: 1024)")
    pln.add_argument("--precision", default="bf16", help="training precision (default: bf16)")
    pln.add_argument("--seq-len", type=_positive_int, help="tokens per sequence (default: the "
                     "preset's; above 16K, context parallelism is searched too)")
    pln.add_argument("--top", type=_positive_int, default=10, help="rows to show (default: 10)")
    pln.add_argument("--json", action="store_true", help="print every fitting setting as JSON")

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
                                      "placements", "topologies", "step-models", "flow-fabrics",
                                      "power", "prices"],
                     nargs="?", default="gpus")
    return p


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "estimate": cmd_estimate, "plan": cmd_plan,
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
    code = main()
    import gc

    gc.freeze()  # the process ends: its last collection need not traverse a large world
    sys.exit(code)
