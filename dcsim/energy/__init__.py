"""Power, energy, carbon and cost (the `power:` scenario key; docs/energy.md).

`model` (what each component draws, by what it is doing: PowerModel), `grid` (hourly carbon,
price and PUE series and their integrals over a run), `account` (a finished run's power table,
energy, carbon and cost, overall and per job). Domain layer: no SimPy, no engine.
"""
