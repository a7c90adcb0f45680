"""dcsim's LLM serving model against NVIDIA's published TensorRT-LLM measurements
(docs/validation.md, "Inference serving"). Nothing in the serving model was fitted to them;
two of its figures were changed after a first comparison with them (the page says which and
why).

Source: NVIDIA/TensorRT-LLM, docs/source/performance.md (release 0.6.1): "Peak Throughput"
(static batches from gptSessionBenchmark: B requests of ISL prompt tokens each, all prefilled,
then OSL tokens decoded; output tokens per second per GPU) on H100 SXM in FP8 with an FP8 KV
cache, and "Low Latency" (TensorRT-LLM 0.5: first-token latency at batch 1) on A100 (FP16) and
H100 (FP8). LLaMA 7B is Llama 2 7B's shape; LLaMA 70B is Llama 2 70B's.

Each row is run through the same kernel a service runs (dcsim/kernels/serving.py): B requests
arrive at once on one replica with `chunked_prefill: false` and a token budget of B x ISL (the
whole batch prefilled in one iteration, as a static batch is), then decoded together.

    python -m dcsim.tools.serving_validation      # the table on stdout
    dcsim reference --markdown docs/validation.md  # writes it into the validation page
"""

from __future__ import annotations

import numpy as np

__all__ = ["THROUGHPUT", "FIRST_TOKEN", "predict_throughput", "predict_first_token", "rows",
           "serving_markdown", "main"]

SOURCE = "NVIDIA/TensorRT-LLM docs/source/performance.md (release 0.6.1)"
# (model, GPU, precision, batch, tp, ISL, OSL, measured output tokens/s per GPU)
THROUGHPUT = [
    ("llama2-7b", "h100-sxm5-80gb", "fp8", 768, 1, 128, 128, 19_694),
    ("llama2-7b", "h100-sxm5-80gb", "fp8", 112, 1, 128, 2048, 6_818),
    ("llama2-7b", "h100-sxm5-80gb", "fp8", 80, 1, 2048, 128, 2_244),
    ("llama2-7b", "h100-sxm5-80gb", "fp8", 48, 1, 2048, 2048, 2_740),
    ("llama2-70b", "h100-sxm5-80gb", "fp8", 1024, 2, 128, 128, 2_657),
    ("llama2-70b", "h100-sxm5-80gb", "fp8", 480, 4, 128, 2048, 1_486),
    ("llama2-70b", "h100-sxm5-80gb", "fp8", 96, 2, 2048, 128, 306),
    ("llama2-70b", "h100-sxm5-80gb", "fp8", 64, 2, 2048, 2048, 547),
]
# (model, GPU, precision, tp, ISL, measured first-token latency in ms at batch 1)
FIRST_TOKEN = [
    ("llama2-7b", "h100-sxm5-80gb", "fp8", 1, 128, 7),
    ("llama2-7b", "h100-sxm5-80gb", "fp8", 1, 2048, 36),
    ("llama2-70b", "h100-sxm5-80gb", "fp8", 4, 128, 26),
    ("llama2-70b", "h100-sxm5-80gb", "fp8", 4, 2048, 109),
    ("llama2-7b", "a100-sxm4-80gb", "fp16", 1, 128, 16),
    ("llama2-7b", "a100-sxm4-80gb", "fp16", 1, 2048, 133),
    ("llama2-70b", "a100-sxm4-80gb", "fp16", 4, 128, 47),
    ("llama2-70b", "a100-sxm4-80gb", "fp16", 4, 2048, 377),
]


def _cost(model: str, gpu: str, precision: str, tp: int, max_tokens: int, max_seqs: int):
    from dcsim import catalog
    from dcsim.scenario import GptModel
    from dcsim.serving.llm import llm_cost

    g = catalog.gpus()[gpu]
    kv = "fp8" if precision == "fp8" else "fp16"
    return llm_cost(GptModel(**catalog.model_presets()[model]), g, tp, precision, max_tokens,
                    max_seqs, 0.9, g.nvlink_byte_s, 2e-6, kv_precision=kv)


def predict_throughput(model: str, gpu: str, precision: str, batch: int, tp: int, isl: int,
                       osl: int) -> float:
    """Output tokens per second per GPU of a static batch, through the serving kernel."""
    from dcsim.scenario.serving import ServiceSpec
    from dcsim.serving.requests import Requests
    from dcsim.serving.service import ServiceRun

    cost = _cost(model, gpu, precision, tp, batch * isl, batch)
    spec = ServiceSpec.model_validate({
        "name": "v", "model": model, "gpu_type": gpu, "replicas": 1, "tp": tp,
        "precision": precision,
        "batching": {"max_tokens": batch * isl, "max_seqs": batch, "chunked_prefill": False},
        "requests": {"kind": "poisson", "rate_per_s": 1, "duration_s": 1,
                     "prompt_tokens": {"mean": isl}, "output_tokens": {"mean": osl}}})
    req = Requests(np.zeros(batch), np.full(batch, isl, np.int64), np.full(batch, osl, np.int64),
                   batch)
    run = ServiceRun(0, spec, cost, req)
    run.advance(1e9)
    if not (run.status == 3).all():
        raise RuntimeError(f"{model} batch {batch}: not every request was served")
    return batch * osl / float(np.nanmax(run.done_t)) / tp


def predict_first_token(model: str, gpu: str, precision: str, tp: int, isl: int) -> float:
    """Seconds to the first token of one request alone (its whole prompt in one iteration)."""
    return _cost(model, gpu, precision, tp, isl, 1).prefill_s(isl, isl)


def rows() -> list[tuple[str, float, float]]:
    out = []
    for model, gpu, prec, b, tp, isl, osl, measured in THROUGHPUT:
        out.append((f"{model} {gpu} {prec} B{b} TP{tp} {isl}/{osl} tok/s/GPU",
                    predict_throughput(model, gpu, prec, b, tp, isl, osl), float(measured)))
    for model, gpu, prec, tp, isl, measured in FIRST_TOKEN:
        out.append((f"{model} {gpu} {prec} TP{tp} ISL {isl} first token ms",
                    1e3 * predict_first_token(model, gpu, prec, tp, isl), float(measured)))
    return out


def serving_markdown() -> list[str]:
    """docs/validation.md's serving section."""
    lines = ["", "## Inference serving (TensorRT-LLM published measurements)", "",
             f"The LLM serving model (docs/serving.md) against {SOURCE}: static-batch",
             "throughput on H100 SXM in FP8 with an FP8 KV cache (output tokens/s per GPU), and",
             "first-token latency at batch 1 (TensorRT-LLM 0.5) on H100 (FP8) and A100 (FP16).",
             "Each throughput row runs B requests arriving together through the serving kernel",
             "with `chunked_prefill: false` and a budget of B x ISL tokens (a static batch).",
             "LLaMA 7B has Llama 2 7B's shape, LLaMA 70B Llama 2 70B's. Nothing was fitted to",
             "these rows; after a first comparison two figures changed on physical grounds:",
             "attention runs at the 16-bit rate with 8-bit weights, and a layer's peak",
             "activations are 4 (not 8) hidden-sized buffers per token (the 70B rows had run",
             "out of KV cache and preempted).", "",
             "| case | metric | measured | predicted | error |", "|---|---|---:|---:|---:|"]
    errors: dict[str, list[float]] = {"throughput": [], "first token": []}
    for label, pred, meas in rows():
        kind = "first token" if "first token" in label else "throughput"
        case = label.rsplit(" tok/s/GPU", 1)[0] if kind == "throughput" else label.rsplit(
            " first token ms", 1)[0]
        unit = "output tok/s per GPU" if kind == "throughput" else "first token, ms"
        err = pred / meas - 1
        errors[kind].append(err)
        lines.append(f"| {case} | {unit} | {meas:,.1f} | {pred:,.1f} | {err:+.1%} |")
    lines.append("")
    for kind, e in errors.items():
        a = np.abs(e)
        lines.append(f"{kind.capitalize()}: median absolute error {np.median(a):.1%}, max "
                     f"{a.max():.1%}, mean signed {np.mean(e):+.1%} over {a.size} rows.")
    lines += ["", "The Llama 2 7B throughputs are within 16%. The Llama 2 70B decode-heavy rows",
              "are 2.2-2.5x faster in dcsim: there a decode iteration of the measured engine took",
              "~58 ms (B64, TP2) where streaming the weights and the KV cache at 85% of HBM",
              "bandwidth takes ~18 ms, so that release was not bound by what dcsim models.",
              "First tokens come 9-50% early, most at 128-token prompts: a fixed cost per",
              "request (input copies, the engine's launch, the first sampling; for 70B the",
              "ranks' synchronisation) that the 2 ms iteration overhead under-counts."]
    return lines


def main() -> int:
    print(f"source: {SOURCE}")
    errors = {"throughput": [], "first token": []}
    for label, pred, meas in rows():
        err = pred / meas - 1
        errors["first token" if "first token" in label else "throughput"].append(err)
        print(f"  {label:58s} dcsim {pred:9,.1f}  measured {meas:9,.1f}  {err:+7.1%}")
    for kind, e in errors.items():
        a = np.abs(e)
        print(f"{kind}: median |error| {np.median(a):.1%}, max {a.max():.1%}, "
              f"mean signed {np.mean(e):+.1%} over {a.size} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
