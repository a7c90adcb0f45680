"""The simulation engine: the only place that wires SimPy processes together.

Modules, each importing only those after it: `simulation` (`Simulation`: the wiring, the
loop and the state changes; `simulate`), `collect` (a finished run into `Results`), `shares`
(the links and storage tiers running jobs share), `rounds` (the queue and the scheduling
rounds), `runner` (one job's run segment as a process; a segment's accounting), `ledger`
(storage and checkpoint books), `record` (events, GPU timeline, link levels, power spans),
`clock` (stepping to the end, with its guards) and `budget` (the facility power budget).
A step time is put together in `dcsim.world.pace`.
"""

from dcsim.engine.simulation import Simulation, simulate

__all__ = ["Simulation", "simulate"]
