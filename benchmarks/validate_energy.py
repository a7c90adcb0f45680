"""The energy model against published figures (docs/energy.md#validation): each row says
whether it checks dcsim's accounting (the path from a run to kWh and tonnes, with the power
pinned to the published figure) or its power model (what a GPU draws).

    python -m benchmarks.validate_energy      # prints the Markdown table docs/energy.md quotes

Rows (sources in docs/energy.md):
- BLOOM 176B (Luccioni et al. 2022): 1,082,990 A100-hours at the 400 W TDP -> 433,196 kWh, at
  57 g/kWh -> 24.69 t; the comparison table's 30 t adds PUE 1.2. Accounting.
- GPT-3 on V100 (Patterson et al. 2021, Table 4): measured system power per accelerator (GPU,
  its share of host, memory, NICs, fans) 330 W at a measured 24.6 TFLOP/s per V100 (of 125).
  dcsim's power model at that utilisation, on a V100 server of the catalog. Power model.
- V100 at a 150 W cap (McDonald et al. 2022): -13.7% energy (with +6.8% time, which
  `clock_bound` is fitted to). Power model and cap curve; the energy change is held out.
- OLMo 2 7B and 13B (Team OLMo 2024, Table 19): GPU energy of the whole training (pre- and
  mid-training tokens) on H100s. dcsim's step model (throughput) and power model together: GPU
  count, run time and average power are not published.
"""

from __future__ import annotations

import argparse

H = 3600.0

# (name, published, unit, kind)
ROWS = {
    "bloom-dynamic": ("BLOOM 176B: 1,082,990 A100-h x 400 W; carbon at 57 g/kWh",
                      (433.196, 24.69), "MWh, t", "accounting"),
    "bloom-pue": ("BLOOM 176B, comparison table: the same x PUE 1.2", 30.0, "t", "accounting"),
    "gpt3-v100": ("GPT-3 on V100: system power per accelerator at 24.6 of 125 TFLOP/s", 330.0,
                  "W", "power model"),
    "v100-cap": ("V100 capped at 150 W (of 250 W): change in energy (BERT-large, 2 x V100)",
                 -13.7, "%", "power model (cap curve; held out)"),
    "olmo2-7b": ("OLMo 2 7B: GPU energy of training, 4.05T tokens on H100", 131.0, "MWh",
                 "step model x power model"),
    "olmo2-13b": ("OLMo 2 13B: GPU energy of training, 5.6T tokens on H100", 257.0, "MWh",
                  "step model x power model"),
}


def _scenario(jobs: list[dict], servers: list[dict], **kw) -> dict:
    return {"name": "validate-energy", "seed": 1, "cluster": {"servers": servers},
            "workload": {"jobs": jobs}, "engine": {"network": "isolated"}, **kw}


def bloom(pue: float = 1.0) -> tuple[float, float]:
    """(MWh IT, tonnes CO2eq) of 1,082,990 A100-hours at 400 W, GPUs only, 57 g/kWh, PUE."""
    import dcsim

    job = {"name": "bloom", "arrival_s": 0.0,
           "model": {"kind": "custom", "params": 1e8, "forward_flop_per_sample": 1e11},
           "parallelism": {"dp": 8}, "global_batch": 8, "duration_s": 1_082_990 / 8 * H}
    s = dcsim.simulate(dcsim.scenario_from_dict(_scenario(
        [job], [{"type": "dgx-a100-80gb", "count": 1}], power={
            "pue": pue, "carbon_g_per_kwh": 57.0,
            "gpus": {"a100-sxm4-80gb": {"tdp_w": 400, "idle_w": 400}},
            "servers": {"dgx-a100-80gb": {"host_idle_w": 0, "host_busy_w": 0}},
            "switch_port_w": 0}))).summary()
    return s["energy_it_kwh"] / 1e3, s["carbon_kg"] / 1e3


def gpt3_v100_system_w() -> float:
    """dcsim's power per V100 (GPU + its host share + its switch ports) at 24.6 TFLOP/s."""
    import dcsim
    from dcsim.perf.step import StepEstimate

    servers = [{"type": "aws-p3-16xlarge", "count": 16}]
    world = dcsim.build_world(dcsim.scenario_from_dict(_scenario(
        [{"name": "x", "model": {"kind": "custom", "params": 1e8,
                                 "forward_flop_per_sample": 1e11},
          "parallelism": {"dp": 8}, "global_batch": 8, "iterations": 1}], servers,
        topology={"kind": "leaf-spine", "params": {"servers_per_leaf": 8, "spines": 2}})))
    power, peak = world.power, 125e12
    est = StepEstimate(1.0, 1.0, 0.0, 0.0, 24.6e12, 24.6e12, 1, peak)  # all compute, measured
    gpu_w = power.running_w(est, "v100-sxm2-16gb")
    host = power.host("aws-p3-16xlarge")
    gpus = 16 * 8
    return gpu_w + host.busy_w / 8 + world.network_power_w() / gpus


def v100_cap_energy_change() -> float:
    """dcsim's change in GPU energy per iteration of BERT-large on 2 x V100 PCIe 32GB capped
    at 150 W (%)."""
    import dcsim

    job = {"name": "bert", "model": "bert-large", "parallelism": {"dp": 2, "micro_batch": 16},
           "global_batch": 64, "precision": "fp16", "iterations": 100}
    sc = dcsim.scenario_from_dict(_scenario([job], [
        {"name": "supercloud", "gpus_per_server": 2, "gpu": "v100-pcie-32gb",
         "intra_node": "pcie", "count": 1}]))
    world = dcsim.build_world(sc)
    est, _ = world.estimate_alone(sc.workload.jobs[0])
    power, gpu = world.power, "v100-pcie-32gb"
    capped = power.capped(est, gpu, 150.0)
    before = power.running_w(est, gpu) * est.iteration_s
    after = power.running_w(capped, gpu) * capped.iteration_s
    return (after / before - 1) * 100


def olmo2_gpu_mwh(layers: int, hidden: int, heads: int, ffn: int, tokens: float,
                  global_batch: int) -> tuple[float, float, float]:
    """(GPU MWh, tokens/s per GPU, W per GPU) of an OLMo 2 run as dcsim predicts it: FSDP (ZeRO
    3) over 512 or 1,024 H100s (micro-batch 2, bf16, sequence 4,096; Team OLMo 2024 and the
    released configs), all its tokens at its step time alone."""
    import dcsim

    micro = 2
    dp = global_batch // micro
    job = {"name": "olmo2", "model": {"kind": "gpt", "layers": layers, "hidden": hidden,
                                      "heads": heads, "seq_len": 4096, "vocab": 100352,
                                      "ffn_hidden": ffn, "gated_mlp": True},
           "parallelism": {"dp": dp, "micro_batch": micro, "zero": 3},
           "global_batch": global_batch, "precision": "bf16",
           "iterations": round(tokens / (global_batch * 4096))}
    sc = dcsim.scenario_from_dict(_scenario([job], [{"type": "dgx-h100", "count": dp // 8}]))
    world = dcsim.build_world(sc)
    est, why = world.estimate_alone(sc.workload.jobs[0])
    if est is None:
        raise RuntimeError(why)
    gpu_w = world.power.running_w(est, "h100-sxm5-80gb")
    tok_s = global_batch * 4096 / est.iteration_s / dp
    gpu_hours = tokens / tok_s / H
    return gpu_hours * gpu_w / 1e6, tok_s, gpu_w


def measure() -> dict[str, float | tuple[float, float]]:
    return {
        "bloom-dynamic": bloom(1.0),
        "bloom-pue": bloom(1.2)[1],
        "gpt3-v100": gpt3_v100_system_w(),
        "v100-cap": v100_cap_energy_change(),
        "olmo2-7b": olmo2_gpu_mwh(32, 4096, 32, 11008, 4.05e12, 1024)[0],
        "olmo2-13b": olmo2_gpu_mwh(40, 5120, 40, 13824, 5.6e12, 2048)[0],
    }


def markdown(values: dict) -> str:
    lines = ["| row | checks | published | dcsim | error |", "|---|---|---:|---:|---:|"]
    for key, (label, published, unit, kind) in ROWS.items():
        got = values[key]
        if isinstance(published, tuple):
            for p, g, u in zip(published, got, unit.split(", "), strict=True):
                lines.append(f"| {label} ({u}) | {kind} | {p:,.2f} | {g:,.2f} | "
                             f"{(g / p - 1):+.1%} |")
        elif unit == "%":
            lines.append(f"| {label} | {kind} | {published:+.1f}% | {got:+.1f}% | "
                         f"{got - published:+.1f} points |")
        else:
            lines.append(f"| {label} ({unit}) | {kind} | {published:,.2f} | {got:,.2f} | "
                         f"{(got / published - 1):+.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print(markdown(measure()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
