"""Failure and repair time distributions, one registered class each.

A time-to-failure distribution (`TTF`) draws the times to failure of a component class's
instances from its mean (`mtbf_hours`) and its own parameters; a repair distribution
(`REPAIRS`) draws one repair time from its mean (`mean_hours`). Each class lists the scenario
keys it takes (`params`): giving another one is an error (`check_params`), so a `shape` on an
exponential is refused instead of ignored. Adding a distribution is one class here, its
registration, and a test.

Sources: the mean-matched parameterisations are the usual ones (Weibull scale = mean /
Gamma(1 + 1/k); log-normal mu = ln(mean) - sigma^2 / 2), as in Schroeder & Gibson, "A
large-scale study of failures in high-performance computing systems", DSN 2006, which fits
both to cluster failure logs.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from dcsim.registry import Registry

__all__ = ["TTF", "REPAIRS", "TtfDistribution", "RepairDistribution", "check_params"]


class TtfDistribution:
    """Times to failure of one instance. `memoryless`: the class may fail as one process at
    the summed rate (n / mean), drawing the instance uniformly, instead of keeping each
    instance's next failure in a heap."""

    name: ClassVar[str]
    params: ClassVar[tuple[str, ...]] = ()
    memoryless: ClassVar[bool] = False

    def draw(self, mean_s: float, spec: Any, rng: np.random.Generator,
             size: int | None = None) -> Any:
        raise NotImplementedError


class RepairDistribution:
    """Time to repair or replace one failed component."""

    name: ClassVar[str]
    params: ClassVar[tuple[str, ...]] = ()

    def draw(self, mean_s: float, spec: Any, rng: np.random.Generator) -> float:
        raise NotImplementedError


TTF: Registry[TtfDistribution] = Registry("failure distribution")
REPAIRS: Registry[RepairDistribution] = Registry("repair distribution")


@TTF.register("exponential")
class ExponentialTtf(TtfDistribution):
    """Constant hazard (no ageing): mean `mtbf_hours`."""

    memoryless = True

    def draw(self, mean_s, spec, rng, size=None):
        return rng.exponential(mean_s, size)


@TTF.register("weibull")
class WeibullTtf(TtfDistribution):
    """Shape `shape` (< 1: infant mortality, > 1: wear-out), scaled so that the mean is
    `mtbf_hours`."""

    params = ("shape",)

    def draw(self, mean_s, spec, rng, size=None):
        scale = mean_s / math.gamma(1.0 + 1.0 / spec.shape)
        return scale * rng.weibull(spec.shape, size)


@TTF.register("lognormal")
class LognormalTtf(TtfDistribution):
    """Log-standard deviation `sigma`, mean `mtbf_hours`."""

    params = ("sigma",)

    def draw(self, mean_s, spec, rng, size=None):
        return rng.lognormal(math.log(mean_s) - spec.sigma ** 2 / 2, spec.sigma, size)


@REPAIRS.register("fixed")
class FixedRepair(RepairDistribution):
    """Always `mean_hours`."""

    def draw(self, mean_s, spec, rng):
        return mean_s


@REPAIRS.register("exponential")
class ExponentialRepair(RepairDistribution):
    """Exponential, mean `mean_hours`."""

    def draw(self, mean_s, spec, rng):
        return float(rng.exponential(mean_s))


@REPAIRS.register("lognormal")
class LognormalRepair(RepairDistribution):
    """Log-normal, log-standard deviation `sigma`, mean `mean_hours`."""

    params = ("sigma",)

    def draw(self, mean_s, spec, rng):
        return float(rng.lognormal(math.log(mean_s) - spec.sigma ** 2 / 2, spec.sigma))


def check_params(registry: Registry, name: str, given: set[str], optional: set[str]
                 ) -> str | None:
    """Why the keys `given` (among the distribution keys `optional`) do not suit distribution
    `name`, or None: an unknown name, or a key the distribution does not take."""
    if name not in registry:
        return f"unknown {registry.what} {name!r}; valid: {', '.join(registry.names())}"
    takes = set(registry.get(name).params)
    extra = sorted((given & optional) - takes)
    if extra:
        what = f"takes {', '.join(sorted(takes))}" if takes else "takes no parameters"
        return (f"{', '.join(extra)}: not a parameter of the {name} distribution (it "
                f"{what})")
    return None
