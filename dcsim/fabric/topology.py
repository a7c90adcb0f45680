"""Topology builders: each returns a networkx graph of servers and switches.

Nodes carry `kind` ("server" or "switch"); edges carry `bandwidth_byte_s` (per direction) and
`latency_s`. Adding a topology is one class with a `Params` model and one registration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from dcsim.registry import Registry

__all__ = ["TOPOLOGIES", "Topology", "ServerPort", "server_node"]

TOPOLOGIES: Registry[Topology] = Registry("topology")


class ServerPort(BaseModel):
    """What a topology needs of a server: its id and its NICs' total bandwidth and latency."""

    model_config = ConfigDict(frozen=True)
    server_id: int
    nic_byte_s: float
    nic_latency_s: float


def server_node(server_id: int) -> str:
    return f"server{server_id}"


class Topology:
    name: ClassVar[str]

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def build(self, servers: Sequence[ServerPort]) -> nx.Graph:
        raise NotImplementedError


def _edge(g: nx.Graph, a: str, b: str, bandwidth: float, latency: float) -> None:
    if bandwidth <= 0:
        raise ValueError(f"link {a} - {b}: bandwidth must be > 0, got {bandwidth}")
    g.add_edge(a, b, bandwidth_byte_s=bandwidth, latency_s=latency)


@TOPOLOGIES.register("single-switch")
class SingleSwitch(Topology):
    """Every server on one non-blocking switch (the bottleneck is each server's NICs)."""

    class Params(Topology.Params):
        switch_latency_s: float = Field(default=0.0, ge=0, le=1.0)

    params: Params  # this class's own params (typed)

    def build(self, servers: Sequence[ServerPort]) -> nx.Graph:
        g = nx.Graph()
        g.add_node("switch", kind="switch")
        for s in servers:
            g.add_node(server_node(s.server_id), kind="server")
            lat = s.nic_latency_s + self.params.switch_latency_s
            _edge(g, server_node(s.server_id), "switch", s.nic_byte_s, lat)
        return g


@TOPOLOGIES.register("leaf-spine")
class LeafSpine(Topology):
    """Two-tier Clos: servers under leaf switches, every leaf linked to every spine.

    A leaf's uplink capacity is the sum of its servers' NIC bandwidth divided by
    `oversubscription`, split evenly over the spines.
    """

    class Params(Topology.Params):
        servers_per_leaf: int = Field(default=16, gt=0, le=100_000)
        spines: int = Field(default=4, gt=0, le=4096)
        oversubscription: float = Field(default=1.0, ge=1.0, le=1000.0)
        switch_latency_s: float = Field(default=5e-7, ge=0, le=1.0)

    params: Params  # this class's own params (typed)

    def build(self, servers: Sequence[ServerPort]) -> nx.Graph:
        p = self.params
        g = nx.Graph()
        n_leaves = math.ceil(len(servers) / p.servers_per_leaf)
        for spine in range(p.spines):
            g.add_node(f"spine{spine}", kind="switch")
        for leaf in range(n_leaves):
            members = servers[leaf * p.servers_per_leaf : (leaf + 1) * p.servers_per_leaf]
            g.add_node(f"leaf{leaf}", kind="switch")
            for s in members:
                g.add_node(server_node(s.server_id), kind="server")
                _edge(g, server_node(s.server_id), f"leaf{leaf}", s.nic_byte_s, s.nic_latency_s)
            uplink = sum(s.nic_byte_s for s in members) / p.oversubscription
            for spine in range(p.spines):
                _edge(g, f"leaf{leaf}", f"spine{spine}", uplink / p.spines, p.switch_latency_s)
        return g
