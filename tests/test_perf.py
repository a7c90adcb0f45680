"""Model zoo FLOPs/parameters against the published formulas; the first-level step model."""

from __future__ import annotations

import csv

import pytest

from dcsim import catalog
from dcsim.fabric.network import RingPath
from dcsim.perf import FirstOrderStepModel, model_stats
from dcsim.scenario import JobSpec
from tests.conftest import REPO


def gpt_job(layers=96, hidden=12288, heads=96, seq=2048, vocab=51200, batch=64,
            tp=8, pp=8, dp=1, mb=1, v=1, recompute="none", precision="fp16") -> JobSpec:
    return JobSpec.model_validate({
        "name": "g", "model": {"kind": "gpt", "layers": layers, "hidden": hidden, "heads": heads,
                               "seq_len": seq, "vocab": vocab},
        "parallelism": {"tp": tp, "pp": pp, "dp": dp, "micro_batch": mb, "virtual_stages": v,
                        "recompute": recompute},
        "global_batch": batch, "precision": precision, "iterations": 1})


@pytest.mark.parametrize(("n", "h", "s", "V"), [(96, 12288, 2048, 51200),
                                                (24, 2048, 4096, 131072),
                                                (128, 25600, 2048, 51200)])
def test_gpt_flops_match_megatron_formulas(n, h, s, V):
    l = n  # noqa: E741 - the paper's symbol for layers
    stats = model_stats(gpt_job(l, h, h // 128, s, V).model)
    model = 72 * s * l * h**2 * (1 + s / (6 * h) + V / (12 * l * h))  # per sequence
    hardware_full = 96 * s * l * h**2 * (1 + s / (6 * h) + V / (16 * l * h))
    params = 12 * l * h**2 * (1 + 13 / (12 * h) + (V + s) / (12 * l * h))
    assert stats.training_flop_per_sample() == pytest.approx(model, rel=1e-12)
    full = stats.training_flop_per_sample() + stats.recompute_flop_per_sample("full")
    assert full == pytest.approx(hardware_full, rel=1e-12)
    assert stats.params == pytest.approx(params, rel=1e-3)


def test_gqa_and_gated_mlp_shrink_and_grow_as_expected():
    base = dict(kind="gpt", layers=2, hidden=1024, heads=16, seq_len=128, vocab=1000)
    plain = model_stats(JobSpec.model_validate({"name": "a", "model": base, "global_batch": 1,
                                                "iterations": 1}).model)
    gqa = model_stats(JobSpec.model_validate({"name": "a", "model": {**base, "kv_heads": 4},
                                              "global_batch": 1, "iterations": 1}).model)
    gated = model_stats(JobSpec.model_validate({
        "name": "a", "model": {**base, "gated_mlp": True, "ffn_hidden": 4096},
        "global_batch": 1, "iterations": 1}).model)
    h, kv = 1024, 256
    assert plain.params - gqa.params == pytest.approx(2 * 2 * (h * h - h * kv) + 2 * 2 * (h - kv))
    assert gated.forward_flop_per_sample > plain.forward_flop_per_sample


def test_cnn_flops_scale_with_image_area():
    r224 = model_stats(JobSpec.model_validate({
        "name": "r", "model": "resnet50", "global_batch": 1, "iterations": 1}).model)
    r448 = model_stats(JobSpec.model_validate({
        "name": "r", "model": {"kind": "cnn", "arch": "resnet50", "image_size": 448},
        "global_batch": 1, "iterations": 1}).model)
    assert r224.forward_flop_per_sample == pytest.approx(2 * 4.09e9, rel=1e-3)
    assert r448.forward_flop_per_sample == pytest.approx(4 * r224.forward_flop_per_sample, rel=1e-3)
    assert r224.params == pytest.approx(25.557e6, rel=1e-4)  # torchvision: 25,557,032


def test_mlp_counts():
    spec = JobSpec.model_validate({"name": "m", "model": {"kind": "mlp", "inputs": 784,
                                   "hidden": [30], "outputs": 10}, "global_batch": 1,
                                   "iterations": 1})
    stats = model_stats(spec.model)
    assert stats.params == 784 * 30 + 30 + 30 * 10 + 10
    assert stats.forward_flop_per_sample == 2 * (784 * 30 + 30 * 10)


def test_step_model_pieces():
    gpu = catalog.gpus()["a100-sxm4-80gb"]
    ring = RingPath(bandwidth_byte_s=24e9, latency_s=1e-6)
    est = FirstOrderStepModel().estimate(gpt_job(batch=64, tp=8, pp=8, dp=1), gpu, ring)
    stats = model_stats(gpt_job().model)
    expected_compute = stats.training_flop_per_sample() * 64 / (64 * 312e12 * 0.64)
    assert est.compute_s == pytest.approx(expected_compute)
    assert est.bubble_s == pytest.approx(est.compute_s * 7 / 64)  # (p-1)/m
    assert est.dp_comm_s == 0.0
    inter = FirstOrderStepModel().estimate(gpt_job(batch=64, pp=8, v=3), gpu, ring)
    assert inter.bubble_s == pytest.approx(est.bubble_s / 3)  # interleaving divides by v
    dp = FirstOrderStepModel().estimate(gpt_job(batch=128, dp=2), gpu, ring)
    grad_bytes = stats.params / 64 * 2
    assert dp.dp_comm_s == pytest.approx(2 * 1 / 2 * grad_bytes / 24e9 + 2 * 1e-6)
    assert est.mfu == pytest.approx(est.model_flop_s_per_gpu / 312e12)


def test_reference_row_used_to_set_a100_efficiency():
    """The first-level A100 efficiency reproduces the GPT-1T full-recompute row."""
    with (REPO / "data/reference/megatron_a100_korthikanti.csv").open() as f:
        rows = list(csv.DictReader(f))
    row = next(r for r in rows if r["model"] == "1T")
    job = gpt_job(int(row["layers"]), int(row["hidden"]), int(row["heads"]), int(row["seq"]),
                  int(row["vocab"]), int(row["global_batch"]), int(row["tp"]), int(row["pp"]),
                  1, int(row["micro_batch"]), int(row["virtual_stages"]), "full")
    est = FirstOrderStepModel().estimate(job, catalog.gpus()["a100-sxm4-80gb"], RingPath(1, 0))
    assert est.iteration_s == pytest.approx(float(row["iter_s_full_recompute"]), rel=0.03)


def test_memory_per_gpu():
    from dcsim.perf.memory import memory_breakdown

    job = gpt_job(tp=8, pp=8)
    stats = model_stats(job.model)
    mem = memory_breakdown(job)
    # bf16 weights 2 + fp32 main gradients 4 + Adam 12 bytes per parameter (Megatron)
    assert mem.weights + mem.gradients + mem.optimizer == pytest.approx(stats.params / 64 * 18)
    bf16_grads = gpt_job(tp=8, pp=8).model_copy(update={"parallelism": job.parallelism.model_copy(
        update={"grad_reduce_dtype": "bf16"})})
    state = memory_breakdown(bf16_grads)
    assert state.weights + state.gradients + state.optimizer == pytest.approx(
        stats.params / 64 * 16)  # ZeRO paper's 2 + 2 + 12
    assert memory_breakdown(gpt_job(tp=1, pp=1, batch=8)).total > 80e9  # 175B on one GPU: no


def test_peaks_match_reference_table():
    """Section 6 of the reference README: dense bf16/fp16, fp8, tf32, fp32, HBM, memory."""
    table = {
        "v100-sxm2-32gb": (125, None, None, 15.7, 900, 32, 300),
        "a100-sxm4-80gb": (312, None, 156, 19.5, 2039, 80, 600),
        "h100-sxm5-80gb": (989, 1979, 495, 67, 3350, 80, 900),
        "h200-sxm-141gb": (989, 1979, 495, 67, 4800, 141, 900),
    }
    for name, (half, fp8, tf32, fp32, hbm, mem, nvl) in table.items():
        g = catalog.gpus()[name]
        assert g.peak_flop_s["fp16"] == half * 1e12
        assert g.peak_flop_s.get("fp8") == (fp8 * 1e12 if fp8 else None)
        assert g.peak_flop_s.get("tf32") == (tf32 * 1e12 if tf32 else None)
        assert g.peak_flop_s["fp32"] == fp32 * 1e12
        assert (g.hbm_bandwidth_byte_s, g.nvlink_byte_s) == (hbm * 1e9, nvl * 1e9)
        assert 0.99 * mem * 2**30 <= g.memory_bytes <= mem * 2**30  # marketed "GB" are ~GiB


def test_catalog_has_the_required_entries():
    assert {"v100-sxm2-32gb", "a100-sxm4-80gb", "h100-sxm5-80gb", "h200-sxm-141gb",
            "host-cpu"} <= set(catalog.gpus())
    assert {"dgx-a100-80gb", "dgx-h100", "pcie-4gpu"} <= set(catalog.servers())
    assert {"hdr200", "ndr400"} <= set(catalog.nics())
    for server in catalog.servers().values():
        assert server.gpu in catalog.gpus()
        assert all(nic in catalog.nics() for nic, _ in server.nics)


def test_validation_meets_the_target_and_the_doc_is_current():
    """Every published row, one fitted profile per GPU type: mean |error| <= 5%, max <= 10%.
    docs/validation.md is generated; regenerate with `dcsim reference --markdown ...`."""
    from dcsim.tools.validation import collective_table, markdown, reference_table

    rows = reference_table()
    assert len(rows) == 17  # 4 A100 models x 2 recompute modes + 9 H100 models
    errors = [abs(r.error) for r in rows]
    assert sum(errors) / len(errors) <= 0.05
    assert max(errors) <= 0.10
    collectives = collective_table()
    nccl = [abs(r.error) for r in collectives]
    assert sum(nccl) / len(nccl) <= 0.10  # issue 4's target for the collectives
    from dcsim.tools.jobreport import job_markdown, job_rows
    from dcsim.tools.serving_validation import serving_markdown
    from dcsim.tools.validation import frontier_markdown, heldout_llm_markdown

    extra = (heldout_llm_markdown() + frontier_markdown()
             + job_markdown(job_rows(), "img/parity_jobs.png") + serving_markdown())
    assert (REPO / "docs/validation.md").read_text() == markdown(rows, collectives, extra)


def test_held_out_llm_rows_are_never_fitted_and_are_reported():
    """The held-out Llama 3.1 H100 rows are not among the cases the profile fit reads, and each
    one runs (fits in memory, places) through the simulation's code path."""
    from dcsim.tools.validation import heldout_llm_cases, reference_cases, reference_table

    held = heldout_llm_cases()
    fitted = {c.case for c in reference_cases()}
    assert len(held) == 4 and not fitted & {c.case for c in held}
    rows = reference_table(cases=held)
    assert all(0.3 < r.predicted / r.measured < 3 for r in rows)
    assert {c.job.parallelism.cp for c in held} == {2}


def test_readme_quotes_the_current_validation_errors():
    from dcsim.tools.validation import reference_table

    errors = [abs(r.error) for r in reference_table()]
    mean, worst = sum(errors) / len(errors), max(errors)
    readme = (REPO / "README.md").read_text().replace("\n  ", " ")
    assert f"off by {mean:.1%} on average and by up to {worst:.1%}" in readme


def test_frontier_rows_are_held_out_and_the_readme_quotes_them():
    """data/reference/frontier_heldout.csv: never among the fit's cases; every row predicted
    within 2x; README's figures are the table's."""
    from dcsim.tools.validation import frontier_rows, heldout_llm_cases, reference_table

    rows = frontier_rows()
    assert len(rows) == 9 and all(0.5 < r.predicted / r.measured < 2 for r in rows)
    by = {(r.source, r.case.split(" ")[0]): r for r in rows}
    deepseek = by[("DeepSeek-V3 report Table 1", "pre-training")]
    meta = [r for r in rows if r.source == "Llama 3 paper Table 4" and "405B 8K" in r.case]
    readme = (REPO / "README.md").read_text().replace("\n  ", " ")
    assert f"come out {abs(deepseek.error):.0%} low" in readme and deepseek.error < 0
    assert f"benchmarks, up to {max(r.error for r in meta):.0%} faster" in readme
    held = [abs(r.error) for r in reference_table(cases=heldout_llm_cases())]
    assert f"within {max(held):.1%} in BF16 and in FP8" in readme


def test_resnet50_layer_list_matches_its_published_totals():
    """53 convolutions + the classifier: 4.09 GMACs at 224 px (torchvision model card)."""
    stats = model_stats(JobSpec.model_validate({"name": "r", "model": "resnet50",
                                                "global_batch": 1, "iterations": 1}).model)
    assert stats.net is not None
    assert sum(op.kind == "matmul" for op in stats.net.ops) == 53 + 1
    assert stats.forward_flop_per_sample == pytest.approx(2 * 4.09e9, rel=2e-3)
    cifar = model_stats(JobSpec.model_validate({"name": "c", "model": {
        "kind": "cnn", "arch": "cifar10-cnn"}, "global_batch": 1, "iterations": 1}).model)
    assert cifar.forward_flop_per_sample == 2 * 6_128_896  # counted in cnn_archs.yaml
    from dcsim.perf.memory import memory_breakdown

    job = JobSpec.model_validate({"name": "r", "model": "resnet50", "global_batch": 256,
                                  "parallelism": {"micro_batch": 256}, "precision": "fp16",
                                  "iterations": 1})
    activations = memory_breakdown(job).activations
    assert 10e9 < activations < 40e9  # ~ 3 x 11M elements x 2 bytes x 256 images


def test_readme_quotes_the_collective_validation():
    from dcsim.tools.validation import collective_table

    worst = max(abs(r.error) for r in collective_table())
    assert worst < 0.04
    readme = (REPO / "README.md").read_text().replace("\n  ", " ")
    assert "bus bandwidths within 4%" in readme


@pytest.mark.parametrize(("zero", "figure_gb"), [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_model_state_memory_matches_the_zero_paper_figure(zero, figure_gb):
    """Rajbhandari et al. 2020 (ZeRO), Figure 1: a 7.5B-parameter model with Adam in mixed
    precision (K = 12) on 64 data-parallel GPUs holds 120 / 31.4 / 16.6 / 1.9 GB of model states
    per GPU without ZeRO and with stages 1, 2 and 3. ZeRO-3's layers gathered for compute are
    working memory the figure leaves out, so they are taken off here."""
    from dcsim.perf.memory import memory_breakdown

    job = gpt_job(layers=36, hidden=4096, heads=32, batch=64, tp=1, pp=1, dp=64)
    par = job.parallelism.model_copy(update={"zero": zero, "grad_reduce_dtype": "bf16"})
    job = job.model_copy(update={"parallelism": par})
    psi = model_stats(job.model).params
    assert psi == pytest.approx(7.5e9, rel=0.01)
    mem = memory_breakdown(job)
    gathered = (1 + par.prefetch) * psi / job.model.layers * 2 if zero == 3 else 0.0
    states = mem.weights - gathered + mem.gradients + mem.optimizer
    assert states * 7.5e9 / psi == pytest.approx(figure_gb * 1e9, rel=0.02)
