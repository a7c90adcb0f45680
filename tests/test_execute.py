"""Execute mode: small models really trained through dcsim's kernels, with the job's precision
and pruning applied to the real weights. Iteration counts are kept small; seeds are fixed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from dcsim.execute import TrainingRecord, TrainingResult, fake_quantize, prune_mask, train
from dcsim.scenario.jobs import JobSpec

CHANCE = 0.1  # ten classes


def mlp_job(execute: dict[str, Any] | None = None, **overrides: Any) -> JobSpec:
    """The seed article's MLP [64 -> 32 -> 10] on the digits, plain SGD at lr 0.1."""
    job: dict[str, Any] = {
        "name": "mlp",
        "model": {"kind": "mlp", "inputs": 64, "hidden": [32], "outputs": 10},
        "global_batch": 32,
        "parallelism": {"micro_batch": 32},
        "iterations": 300,
        "precision": "fp32",
        "execute": {
            "dataset": "digits",
            "optimizer": "sgd",
            "learning_rate": 0.1,
            "eval_every": 50,
            **(execute or {}),
        },
    }
    job.update(overrides)
    job["parallelism"] = {"micro_batch": job["global_batch"]}
    return JobSpec.model_validate(job)


def run(job: JobSpec, seed: int = 1) -> TrainingResult:
    return train(job, np.random.default_rng(seed))


def mean_loss(records: list[TrainingRecord]) -> float:
    return float(np.mean([r.loss for r in records]))


@pytest.fixture(scope="module")
def dense() -> TrainingResult:
    return run(mlp_job())


# --- the dense baseline ----------------------------------------------------------------------


def test_mlp_learns_the_digits(dense):
    assert dense.final_accuracy >= 0.85
    assert mean_loss(dense.records[-20:]) < 0.5 * mean_loss(dense.records[:20])
    assert dense.sparsity_achieved == 0.0


def test_records_iterations_evaluations_and_wall_time(dense):
    assert dense.iterations == 300
    assert [r.iteration for r in dense.records] == list(range(1, 301))
    evaluated = [r.iteration for r in dense.records if not math.isnan(r.accuracy)]
    assert evaluated == [50, 100, 150, 200, 250, 300]
    assert {r.phase for r in dense.records} == {"dense"}
    assert dense.final_accuracy == dense.records[-1].accuracy
    assert all(math.isfinite(r.loss) for r in dense.records)
    assert dense.wall_s > 0
    assert dense.wall_s_per_iteration == pytest.approx(dense.wall_s / 300)


def test_evaluates_at_the_last_iteration_off_the_grid():
    result = run(mlp_job(iterations=7, execute={"eval_every": 3}))
    evaluated = [r.iteration for r in result.records if not math.isnan(r.accuracy)]
    assert evaluated == [3, 6, 7]


def test_same_seed_same_records_other_seed_other_records():
    job = mlp_job(iterations=40, execute={"eval_every": 10})
    a, b, c = run(job, seed=3), run(job, seed=3), run(job, seed=4)
    np.testing.assert_array_equal([r.loss for r in a.records], [r.loss for r in b.records])
    np.testing.assert_array_equal([r.accuracy for r in a.records], [r.accuracy for r in b.records])
    assert [r.loss for r in a.records] != [r.loss for r in c.records]


def test_adam_learns():
    result = run(mlp_job(execute={"optimizer": "adam", "learning_rate": 0.01}))
    assert result.final_accuracy >= 0.9
    assert mean_loss(result.records[-20:]) < 0.3 * mean_loss(result.records[:20])


def test_synthetic_mlp_data_from_the_job_shape():
    job = mlp_job(
        model={"kind": "mlp", "inputs": 48, "hidden": [16, 16], "outputs": 4},
        execute={"dataset": "synthetic"},
    )
    assert run(job).final_accuracy >= 0.8  # chance is 0.25


def test_cnn_trains_on_synthetic_images():
    job = JobSpec.model_validate(
        {
            "name": "cnn",
            "model": {"kind": "cnn", "arch": "cifar10-cnn"},
            "global_batch": 16,
            "parallelism": {"micro_batch": 16},
            "iterations": 20,
            "precision": "fp32",
            "execute": {"dataset": "synthetic", "learning_rate": 0.01, "eval_every": 20},
        }
    )
    result = run(job)
    assert mean_loss(result.records[-5:]) < 0.6 * mean_loss(result.records[:5])
    assert result.records[-1].loss < result.records[0].loss
    assert result.final_accuracy > 3 * CHANCE


def test_a_job_without_execute_is_refused():
    job = mlp_job().model_copy(update={"execute": None})
    with pytest.raises(ValueError, match="execute"):
        run(job)


# --- precision ---------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp16", "bf16", "tf32"])
def test_rounded_precisions_still_learn(precision):
    assert run(mlp_job(precision=precision)).final_accuracy >= 0.85


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_fake_quantized_precisions_still_learn(precision):
    result = run(mlp_job(precision=precision))
    assert result.final_accuracy >= 0.8 > 5 * CHANCE


def he_weights(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((32, 64)) * math.sqrt(2 / 64)).astype(
        np.float32
    )


def test_int8_takes_at_most_255_values_on_a_symmetric_grid():
    w = he_weights()
    q = fake_quantize(w, "int8")
    assert q.dtype == np.float32 and q.shape == w.shape
    assert len(np.unique(q)) <= 255
    scale = np.abs(w).max() / 127
    np.testing.assert_allclose(q / scale, np.round(q / scale), atol=1e-4)
    assert np.abs(q).max() == pytest.approx(np.abs(w).max(), rel=1e-6)
    np.testing.assert_allclose(q, w, atol=scale / 2 * 1.0001)


def test_fp8_is_e4m3_with_a_per_tensor_scale():
    w = he_weights()
    q = fake_quantize(w, "fp8")
    assert len(np.unique(q)) <= 253  # E4M3's finite values
    scaled = q.astype(np.float64) * 448 / np.abs(w).max()
    assert np.abs(scaled).max() == pytest.approx(448)
    nonzero = scaled[scaled != 0]
    exponent = np.maximum(np.floor(np.log2(np.abs(nonzero))), -6)
    mantissa = nonzero / 2.0 ** (exponent - 3)  # an integer when 3 mantissa bits suffice
    np.testing.assert_allclose(mantissa, np.round(mantissa), atol=1e-6)
    np.testing.assert_allclose(q, w, rtol=2**-4, atol=np.abs(w).max() / 448 * 2**-9)


def test_bf16_keeps_the_top_16_bits_and_fp16_round_trips():
    w = he_weights()
    b = fake_quantize(w, "bf16")
    assert not np.any(b.view(np.uint32) & 0xFFFF)
    np.testing.assert_allclose(b, w, rtol=2**-8)
    h = fake_quantize(w, "fp16")
    np.testing.assert_array_equal(h, w.astype(np.float16).astype(np.float32))


def test_full_precisions_leave_the_weights_alone_and_unknown_ones_are_named():
    w = he_weights()
    np.testing.assert_array_equal(fake_quantize(w, "fp32"), w)
    np.testing.assert_array_equal(fake_quantize(w, "tf32"), w)
    assert not np.any(fake_quantize(np.zeros(5, np.float32), "int8"))
    with pytest.raises(ValueError, match="fp4.*valid: fp32"):
        fake_quantize(w, "fp4")


# --- pruning -----------------------------------------------------------------------------------


def test_two_four_sparsity_halves_the_weights_and_fine_tunes(dense):
    result = run(mlp_job(sparsity="2:4"))
    assert result.sparsity_achieved == pytest.approx(0.5)
    assert [r.phase for r in result.records] == ["dense"] * 150 + ["pruned"] * 150
    assert result.final_accuracy >= 0.8


def test_magnitude_pruning_keeps_the_weights_at_zero(dense):
    result = run(mlp_job(prune_fraction=0.9))
    assert result.sparsity_achieved == pytest.approx(0.9, abs=0.002)
    assert math.isfinite(result.final_accuracy)
    assert 2 * CHANCE < result.final_accuracy <= dense.final_accuracy + 0.02


def test_prune_after_sets_when_pruning_starts():
    at_start = run(mlp_job(iterations=20, prune_fraction=0.5, execute={"prune_after": 0.0}))
    assert {r.phase for r in at_start.records} == {"pruned"}
    at_end = run(mlp_job(iterations=20, prune_fraction=0.5, execute={"prune_after": 1.0}))
    assert {r.phase for r in at_end.records} == {"dense"}
    assert at_end.sparsity_achieved == pytest.approx(0.5, abs=0.002)
    assert math.isfinite(at_end.final_accuracy)


def test_prune_mask_drops_the_smallest_magnitudes():
    w = np.array([[0.1, -3.0, 0.2, 4.0], [-0.05, 1.0, -2.0, 0.3]], np.float32)
    keep = prune_mask(w, fraction=0.5)
    assert keep.tolist() == [[False, True, False, True], [False, True, True, False]]


def test_prune_mask_two_of_every_four_along_the_input_dimension():
    w = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
    keep = prune_mask(w, sparsity="2:4")
    groups = keep[:, :8].reshape(6, 2, 4)
    assert np.all(groups.sum(axis=-1) == 2)
    assert np.all(keep[:, 8:])  # a last group of 2 keeps both
    magnitude = np.abs(w[:, :8]).reshape(6, 2, 4)
    kept_min = np.where(groups, magnitude, np.inf).min(axis=-1)
    dropped_max = np.where(groups, -np.inf, magnitude).max(axis=-1)
    assert np.all(kept_min >= dropped_max)


def test_prune_mask_on_conv_kernels_and_combined():
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    keep = prune_mask(w, fraction=0.5, sparsity="2:4")
    assert keep.shape == w.shape
    rows = keep.reshape(4, -1)
    assert np.all(rows[:, :24].reshape(4, 6, 4).sum(axis=-1) <= 2)
    assert keep.mean() <= 0.5
    with pytest.raises(ValueError, match="fraction"):
        prune_mask(w, fraction=1.0)


def test_an_executed_job_through_the_engine_fills_the_training_tables(tmp_path):
    import dcsim

    job = {"name": "mlp", "model": {"kind": "mlp", "inputs": 64, "hidden": [16], "outputs": 10},
           "parallelism": {"micro_batch": 32}, "global_batch": 32, "precision": "bf16",
           "iterations": 40, "prune_fraction": 0.5,
           "execute": {"dataset": "digits", "learning_rate": 0.1, "eval_every": 20}}
    data = {"name": "ex", "seed": 5, "cluster": {"servers": [{"type": "host", "count": 1}]},
            "workload": {"jobs": [job]}}
    res = dcsim.simulate(dcsim.scenario_from_dict(data))
    training, executions = res.training, res.executions
    assert list(training.iteration) == list(range(1, 41))
    assert training.accuracy.notna().sum() == 2  # iterations 20 and 40
    assert set(training.phase) == {"dense", "pruned"}
    (row,) = executions.itertuples()
    assert row.iterations == 40 and row.measured_iteration_s > 0
    assert row.simulated_iteration_s == pytest.approx(res.jobs.iloc[0].iteration_time_s)
    assert row.sparsity_achieved == pytest.approx(0.5, abs=0.02)
    back = dcsim.load_results(res.save(tmp_path))
    assert len(back.training) == 40 and len(back.executions) == 1
    from dcsim.plotting import save_plots

    assert "training.png" in {p.name for p in save_plots(back, tmp_path)}
    again = dcsim.simulate(dcsim.scenario_from_dict(data)).training
    assert again.loss.tolist() == training.loss.tolist()  # seeded: same losses
