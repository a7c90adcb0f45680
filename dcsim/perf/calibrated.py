"""The calibrated step-time model: operation-level costs, executed pipeline schedules,
tensor/pipeline/data/expert-parallel communication, and memory per GPU.

One iteration of a transformer job = the pipeline schedule of its micro-batches (each stage's
forward and backward built from `transformer.layer_cost`, the logits on the last stage, a
point-to-point transfer between stages) + the data-parallel gradient reduction not hidden
behind the last micro-batch's backward + the optimizer step. Other models (CNN, DLRM, MLP,
custom) run data-parallel only, as one roofline pass over their FLOPs and bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcsim.catalog import GpuSpec
from dcsim.fabric.network import RingPath
from dcsim.perf.costs import Collectives, Device
from dcsim.perf.memory import local_param_split
from dcsim.perf.netcost import fused_forward_s, net_cost, optimizer_cost
from dcsim.perf.profile import DeviceProfile, profile_for
from dcsim.perf.schedule import pipeline_makespan
from dcsim.perf.step import StepEstimate
from dcsim.perf.transformer import (
    ExpertLinks,
    act_bytes,
    head_cost,
    layer_cost,
    mtp_cost,
    weight_bytes,
)
from dcsim.perf.zoo import dense_layers_in, model_stats
from dcsim.scenario import GptModel, JobSpec
from dcsim.units import DTYPE_BYTES

__all__ = ["CalibratedStepModel", "SPARSE_SPEEDUP"]

SPARSE_SPEEDUP = 2.0  # 2:4 structured sparsity on Ampere/Hopper sparse tensor cores
OPTIMIZER_BYTES_PER_PARAM = 32  # Adam: read weights, grads, m, v (fp32), write weights, m, v
SGD_BYTES_PER_PARAM = 12
GRAD_BUCKET_BYTES = 25e6  # PyTorch DistributedDataParallel's default bucket (bucket_cap_mb)


@dataclass(frozen=True, slots=True)
class _Pipeline:
    makespan_s: float
    compute_s: float  # compute per device over the iteration (critical stage)
    tp_comm_s: float
    last_backward_s: float  # one micro-batch's backward through a device's chunks
    first_forward_s: float  # one micro-batch's forward through a device's chunks


def _paced(gpu_s: float, host_s: float) -> float:
    """The time of a phase whose kernels take `gpu_s` and whose framework calls `host_s`."""
    return (gpu_s ** 4 + host_s ** 4) ** 0.25


# job fields that do not change a step: estimates are cached without them
NOT_STEP_FIELDS = frozenset({"name", "arrival_s", "iterations", "duration_s", "reference_gpu",
                             "priority", "user", "virtual_cluster"})


class CalibratedStepModel:
    """Step-time model with fitted device profiles (`profiles` overrides the shipped ones)."""

    def __init__(self, profiles: dict[str, DeviceProfile] | None = None) -> None:
        self._profiles = profiles or {}
        self._cache: dict[tuple, StepEstimate] = {}

    def profile(self, gpu: GpuSpec) -> DeviceProfile:
        return self._profiles.get(gpu.name) or profile_for(gpu.name, gpu.first_order_efficiency)

    def device(self, job: JobSpec, gpu: GpuSpec) -> Device:
        sparse = SPARSE_SPEEDUP if job.sparsity == "2:4" and gpu.sparse_tensor_cores else 1.0
        return Device(gpu, self.profile(gpu), job.precision, sparse)

    def estimate(self, job: JobSpec, gpu: GpuSpec, ring: RingPath) -> StepEstimate:
        key = (job.model_dump_json(exclude=NOT_STEP_FIELDS), gpu.name, ring)
        if key not in self._cache:
            self._cache[key] = self._estimate(job, gpu, ring)
        return self._cache[key]

    def _estimate(self, job: JobSpec, gpu: GpuSpec, ring: RingPath) -> StepEstimate:
        dev = self.device(job, gpu)
        stats = model_stats(job.model)
        p = job.parallelism
        samples = job.global_batch
        model_flop = stats.training_flop_per_sample() * samples
        if stats.net is not None:
            return self._net_step(job, dev, stats, ring, model_flop)
        if isinstance(job.model, GptModel):
            pipe = self._pipeline(job.model, job, dev, ring)
            recompute = p.recompute
            if recompute == "selective" and job.model.flash_attention:
                recompute = "none"  # flash attention recomputes inside its own backward
            hardware_flop = (stats.training_flop_per_sample()
                             + stats.recompute_flop_per_sample(recompute)) * samples
        else:
            pipe = self._dense_pass(job, dev, stats)
            hardware_flop = model_flop
        split = local_param_split(job, stats)
        exposed_dp = self._dp_exposed(job, split, ring, dev.profile, pipe)
        # (the distributed optimizer shards over the data- and context-parallel ranks)
        shards = ((p.shard_ranks, max(1, p.shard_ranks // p.ep)) if p.zero >= 1
                  else (1, 1))
        updated = (split[0] / shards[0] + split[1] / shards[1]) * (1 - job.prune_fraction)
        optimizer_s = self._optimizer(job, dev, updated, stats)
        overhead = dev.profile.step_overhead_s
        iteration = pipe.makespan_s + exposed_dp + optimizer_s + overhead
        return StepEstimate(
            iteration_s=iteration, compute_s=pipe.compute_s,
            bubble_s=max(0.0, pipe.makespan_s - pipe.compute_s - pipe.tp_comm_s),
            dp_comm_s=exposed_dp, model_flop=model_flop, hardware_flop=hardware_flop,
            num_gpus=job.num_gpus, peak_flop_s=dev.peak, tp_comm_s=pipe.tp_comm_s,
            optimizer_s=optimizer_s, overhead_s=overhead)

    def forward_s(self, job: JobSpec, gpu: GpuSpec, ring: RingPath, fused: bool = False
                  ) -> float:
        """One micro-batch's forward pass on one GPU, as inference runs it
        (dcsim/serving/dnn.py). `fused`: as an inference engine (TensorRT-style) runs it
        (`netcost.fused_forward_s` for layer-by-layer networks, else `_fused_forward`). Else
        as the training framework runs it: a layer-by-layer network's forward paced by its
        framework calls; a transformer encoder's layers and embedding without the output
        layer (a task head is a small fraction of it); other models' forward kernels."""
        dev = self.device(job, gpu)
        stats = model_stats(job.model)
        if fused:
            if stats.net is not None:
                return fused_forward_s(stats.net, dev, job.parallelism.micro_batch,
                                       DTYPE_BYTES[job.precision])
            return self._fused_forward(job, dev, stats)
        if stats.net is not None:
            cost = net_cost(stats.net, dev, job.parallelism.micro_batch, act_bytes(job.precision),
                            weight_bytes(job))
            return _paced(cost.forward_s, cost.forward_calls * dev.profile.op_overhead_s)
        if isinstance(job.model, GptModel):
            return self._pipeline(job.model, job, dev, ring, head=False).first_forward_s
        return self._dense_pass(job, dev, stats).first_forward_s

    @staticmethod
    def _fused_forward(job: JobSpec, dev: Device, stats) -> float:
        """A forward pass with an inference engine's fusions: normalizations folded into the
        weights or fused with the residual add, activations fused into the products'
        epilogues, activations stored in the precision's own bytes (int8 engines keep int8
        activations), one kernel per product. Convolutions as implicit GEMMs (the input read
        once, not im2col-expanded); a transformer encoder layer as its four (five, gated)
        products, one fused attention kernel (scores never leave the chip: FlashAttention,
        TensorRT's fused MHA) and two passes of residual + layer norm over its tokens."""
        b = job.parallelism.micro_batch
        w = DTYPE_BYTES[job.precision]
        t = 0.0
        if isinstance(job.model, GptModel):
            m = job.model
            tokens = b * m.seq_len
            h, ffn = m.hidden, m.ffn_hidden or 4 * m.hidden
            kv = h * (m.kv_heads or m.heads) // m.heads
            products = [(h, h + 2 * kv), (h, h), (h, ffn * (2 if m.gated_mlp else 1)),
                        (ffn, h)]
            layer = 0.0
            for k, n in products:
                layer += dev.gemm(2.0 * tokens * k * n, (tokens * (k + n) + k * n) * w,
                                  sides=(tokens, k, n))
            # attention: QK^T and PV over each sequence, reading Q, K, V and writing O once
            layer += dev.gemm(4.0 * b * m.seq_len ** 2 * h, tokens * (2 * h + 2 * kv) * w)
            layer += 2 * dev.memory(3 * tokens * h * w)  # residual + norm: read 2, write 1
            return m.layers * layer + dev.memory(tokens * h * w)  # + the embedding lookup
        for mm, k, n in stats.conv_shapes:  # (the input map taken as large as the output:
            # within 2x of it through a CNN, where channels grow as the map shrinks)
            t += dev.gemm(2.0 * b * mm * k * n, (2 * b * mm * n + k * n) * w,
                          sides=(b * mm, k, n))
        for n_in, n_out in stats.layer_shapes:
            t += dev.gemm(2.0 * b * n_in * n_out, (b * (n_in + n_out) + n_in * n_out) * w,
                          sides=(b, n_in, n_out))
        if not stats.conv_shapes and not stats.layer_shapes:  # flops only: one roofline
            t = dev.gemm(stats.forward_flop_per_sample * b,
                         stats.activation_elems_per_sample * b * w)
        return t

    # ------------------------------------------------------------------ pieces
    def _net_step(self, job: JobSpec, dev: Device, stats, ring: RingPath,
                  model_flop: float) -> StepEstimate:
        """A layer-by-layer network (dcsim/perf/netcost.py): each phase (forward, backward,
        optimizer) paced by the slower of its kernels and its framework calls, plus host work
        outside the calls, input decoding where the host bounds it, and the exposed
        data-parallel traffic."""
        net, p, prof = stats.net, job.parallelism, dev.profile
        act, wb = act_bytes(job.precision), weight_bytes(job)
        split = local_param_split(job, stats)
        shards = min(p.dp, p.shard_ranks) if p.zero >= 1 else 1
        sparse = sum(op.elems * op.count for op in net.ops
                     if op.kind == "gather" and op.sparse_grad)
        per_gpu = job.global_batch // p.dp
        opt_gpu, opt_calls = optimizer_cost(net, dev, split[0] / shards * (1 - job.prune_fraction),
                                            sparse * per_gpu)
        if net.rollout:
            one = net_cost(net, dev, 1, act, wb)
            compute = net.rollout * (one.forward_s + one.backward_s)
            host = (net.rollout * (max(one.forward_calls * prof.op_overhead_s, one.forward_s)
                                   + max(one.backward_calls * prof.op_overhead_s,
                                         one.backward_s))
                    + opt_calls * prof.op_overhead_s + net.host_s_per_step / prof.host_speed)
            gpu = compute + opt_gpu
            iteration = max(host, net.processes * gpu) + prof.step_overhead_s
            flop = 3.0 * one.flop * net.rollout
            return StepEstimate(
                iteration_s=iteration, compute_s=compute, bubble_s=0.0, dp_comm_s=0.0,
                model_flop=flop, hardware_flop=flop, num_gpus=job.num_gpus,
                peak_flop_s=dev.peak, optimizer_s=opt_gpu, overhead_s=iteration - gpu)
        b = p.micro_batch
        cost = net_cost(net, dev, b, act, wb)
        micro = per_gpu // b
        compute = micro * (cost.forward_s + cost.backward_s)
        gpu = compute + opt_gpu
        oo = prof.op_overhead_s
        host_extra = (per_gpu * net.host_s_per_sample + net.host_s_per_step) / prof.host_speed
        pipe = _Pipeline(compute, compute, 0.0, cost.backward_s, cost.forward_s)
        exposed_dp = self._dp_exposed(job, split, ring, prof, pipe)
        # within a phase (forward, backward, optimizer) the host runs ahead of the GPU and
        # the slower of the two sets the pace (a smooth maximum, the 4-norm: they do not
        # overlap perfectly); a phase cannot borrow another's slack
        phases = ((cost.forward_s, cost.forward_calls * oo),
                  (cost.backward_s, cost.backward_calls * oo))
        paced = micro * sum(_paced(g, h) for g, h in phases) + _paced(opt_gpu, opt_calls * oo)
        step = paced + prof.step_overhead_s + host_extra
        # the data loader decodes the next batch on the host's cores while this one trains
        decode = (per_gpu * net.decode_s_per_sample / (prof.host_speed * prof.loader_cores)
                  if prof.loader_cores > 0 else 0.0)
        overhead = max(step, decode) - gpu
        return StepEstimate(
            iteration_s=gpu + overhead + exposed_dp, compute_s=compute, bubble_s=0.0,
            dp_comm_s=exposed_dp, model_flop=model_flop, hardware_flop=model_flop,
            num_gpus=job.num_gpus,
            peak_flop_s=dev.peak, optimizer_s=opt_gpu, overhead_s=overhead)

    def _pipeline(self, m: GptModel, job: JobSpec, dev: Device, ring: RingPath,
                  head: bool = True) -> _Pipeline:
        """The transformer's pipeline; without `head`, the last stage has no output layer."""
        p = job.parallelism
        if 0 < ring.min_gpus_per_server < p.tp:  # a tp group spans servers: over the network
            tp = Collectives(p.tp, ring.bandwidth_byte_s * dev.profile.network_efficiency,
                             ring.latency_s)
        else:
            tp = Collectives(p.tp, ring.intra_bandwidth * dev.profile.nvlink_efficiency,
                             ring.intra_latency_s)
        ep = self._expert_links(job, dev, ring)
        # context-parallel ranks sit next to the tensor-parallel ones (Megatron's order): in
        # one server while tp x cp fits it, else across the network
        cp = None
        if p.cp > 1:
            inside = 0 < p.tp * p.cp <= max(ring.min_gpus_per_server, 1) or ring.servers == 1
            cp = (Collectives(p.cp, ring.intra_bandwidth * dev.profile.nvlink_efficiency,
                              ring.intra_latency_s) if inside else
                  Collectives(p.cp, ring.cp_bandwidth * dev.profile.network_efficiency,
                              ring.latency_s))
        layer = layer_cost(m, job, dev, tp, ep, cp)
        dense = layer_cost(m, job, dev, tp, ep, cp, dense=True) if m.moe_dense_layers else layer
        # each virtual stage's layers (uneven stages: Megatron's first/last-stage counts), a
        # MoE model's dense first layers at their own cost
        layers = p.chunk_layers(m.layers)
        n_dense = dense_layers_in(m, layers)
        even = len(set(layers)) == 1 and not any(n_dense)
        t_fwd = np.array([(layer.forward * (k - n) + dense.forward * n).time_s
                          for k, n in zip(layers, n_dense, strict=True)])
        t_bwd = np.array([((layer.backward + layer.recompute) * (k - n)
                           + (dense.backward + dense.recompute) * n).time_s
                          for k, n in zip(layers, n_dense, strict=True)])
        if head:
            head_f, head_b = head_cost(m, job, dev)
            t_fwd[-1] += head_f.time_s
            t_bwd[-1] += head_b.time_s
            # multi-token prediction modules: a layer, a projection and the head each
            mtp_f, mtp_b = mtp_cost(m, job, dev, layer, head_f, head_b)
            t_fwd[-1] += mtp_f.time_s
            t_bwd[-1] += mtp_b.time_s
        embedding = p.micro_batch * m.seq_len // p.cp * m.hidden * act_bytes(job.precision)
        t_fwd[0] += dev.memory(embedding)  # the lookup, and its gradient scattered back
        t_bwd[0] += dev.memory(2 * embedding)
        micro = job.global_batch // (p.dp * p.micro_batch)
        p2p_bytes = (p.micro_batch * m.seq_len // p.cp * m.hidden * act_bytes(job.precision)
                     / p.tp)
        p2p_bw = (ring.p2p_bandwidth * dev.profile.network_efficiency if ring.servers > 1
                  else ring.intra_bandwidth * dev.profile.nvlink_efficiency)
        p2p = p2p_bytes / p2p_bw + ring.latency_s if p.pp > 1 else 0.0
        makespan = pipeline_makespan(p.pipeline_schedule, p.pp, micro, p.virtual_stages,
                                     t_fwd, t_bwd, p2p)
        # report the split of the device with the most work: with even stages the one with
        # the last virtual stage (and the output layer)
        work = [sum(t_fwd[c * p.pp + d] + t_bwd[c * p.pp + d] for c in range(p.virtual_stages))
                for d in range(p.pp)]
        busiest = p.pp - 1 if even else max(range(p.pp), key=lambda d: (work[d], d))
        device_chunks = [busiest + c * p.pp for c in range(p.virtual_stages)]
        compute = float(sum(t_fwd[c] + t_bwd[c] for c in device_chunks)) * micro
        def comm(cost) -> float:
            return cost.forward.comm_s + cost.backward.comm_s + cost.recompute.comm_s

        tp_comm = micro * sum(comm(layer) * (layers[c] - n_dense[c]) + comm(dense) * n_dense[c]
                              for c in device_chunks)
        last_backward = float(sum(t_bwd[c] for c in device_chunks))
        first_forward = float(sum(t_fwd[c] for c in device_chunks))
        return _Pipeline(makespan, compute - tp_comm, tp_comm, last_backward, first_forward)

    @staticmethod
    def _expert_links(job: JobSpec, dev: Device, ring: RingPath) -> ExpertLinks | None:
        """The links of the job's expert-parallel all-to-alls (None without ep). Expert ranks
        stride over the tensor- and context-parallel ones (Megatron's tp-cp-ep-dp-pp order), so
        a server of g GPUs holds g / (tp x cp) of a group's ranks; off the server each GPU has
        its share of the NICs (the shared fabric's all-to-all rate when it sets one)."""
        p = job.parallelism
        if p.ep <= 1:
            return None
        g = ring.min_gpus_per_server or (ring.shape[0] if ring.shape else 0)
        if ring.servers <= 1:
            nodes = 1
        else:
            local = max(1, g // (p.tp * p.cp)) if g else 1
            nodes = max(1, min(ring.servers, -(-p.ep // local)))
        intra = ring.intra_bandwidth * dev.profile.nvlink_efficiency
        network = ring.a2a_bandwidth * dev.profile.network_efficiency
        latency = ring.latency_s if nodes > 1 else ring.intra_latency_s
        return ExpertLinks(p.ep, nodes, network, intra, latency)

    def _dense_pass(self, job: JobSpec, dev: Device, stats) -> _Pipeline:
        """Non-transformer models: data parallel only; one roofline pass per micro-batch."""
        if stats.layer_shapes or stats.conv_shapes:
            return self._layers_pass(job, dev, stats)
        p = job.parallelism
        b = p.micro_batch
        kernels = max(1, stats.kernels_per_sample)
        fwd_flop = stats.forward_flop_per_sample * b
        per_kernel = fwd_flop / kernels
        d = act_bytes(job.precision)
        fwd_s = kernels * dev.gemm(per_kernel, stats.activation_elems_per_sample * b * d / kernels)
        bwd_s = 2 * fwd_s
        micro = job.global_batch // (p.dp * b)
        return _Pipeline(micro * (fwd_s + bwd_s), micro * (fwd_s + bwd_s), 0.0, bwd_s, fwd_s)

    def _layers_pass(self, job: JobSpec, dev: Device, stats) -> _Pipeline:
        """Convolutions (as im2col products, each followed by a normalization and an activation:
        4 memory passes over its output forward, 6 backward), then a stack of dense layers (the
        MLP, or a CNN's classifier), as dcsim's kernels run them: per layer, one forward
        kernel (z = a W^T with the bias and activation fused, as `dcsim calibrate` times it)
        and, backward, the fused delta with dW = dZ^T a and dA = dZ W (two products); then a
        softmax cross-entropy over the outputs."""
        p = job.parallelism
        b, d = p.micro_batch, act_bytes(job.precision)
        w = DTYPE_BYTES[job.precision]
        fwd = bwd = 0.0
        for m, k, n in stats.conv_shapes:  # im2col products; normalization + activation after
            flop = 2.0 * b * m * k * n
            traffic = (b * m * k + b * m * n) * d + k * n * w
            sides = (b * m, k, n)
            fwd += dev.gemm(flop, traffic, sides=sides) + dev.memory(4 * b * m * n * d)
            bwd += 2 * dev.gemm(flop, traffic, sides=sides) + dev.memory(6 * b * m * n * d)
        for n_in, n_out in stats.layer_shapes:
            flop = 2.0 * b * n_in * n_out
            traffic = (b * n_in + 2 * b * n_out) * d + n_in * n_out * DTYPE_BYTES[job.precision]
            sides = (b, n_in, n_out)
            fwd += dev.gemm(flop, traffic, sides=sides)
            bwd += 2 * dev.gemm(flop, traffic, sides=sides)
        fwd += dev.memory(3 * b * stats.layer_shapes[-1][1] * d)  # softmax cross-entropy
        micro = job.global_batch // (p.dp * b)
        return _Pipeline(micro * (fwd + bwd), micro * (fwd + bwd), 0.0, bwd, fwd)

    def _optimizer(self, job: JobSpec, dev: Device, local_params: float, stats) -> float:
        """The update of the `local_params` this GPU owns (after ZeRO sharding): Adam reads and
        writes OPTIMIZER_BYTES_PER_PARAM per parameter (plain
        SGD, as executed jobs may use, 12: read weight and gradient, write weight), one kernel per
        parameter tensor for layer stacks (a fused multi-tensor kernel for transformers)."""
        sgd = job.execute is not None and job.execute.optimizer == "sgd"
        per_param = SGD_BYTES_PER_PARAM if sgd else OPTIMIZER_BYTES_PER_PARAM
        layers = len(stats.layer_shapes) + len(stats.conv_shapes)
        tensors = 2 * layers if layers else 1
        return (dev.memory(local_params * per_param, overhead=False)
                + tensors * dev.profile.kernel_overhead_s)

    def _dp_exposed(self, job: JobSpec, split: tuple[float, float], ring: RingPath,
                    prof: DeviceProfile, pipe: _Pipeline) -> float:
        """Data-parallel communication not hidden behind compute. Without ZeRO: an all-reduce
        of the gradients (in `grad_reduce_dtype`), overlapped with the last micro-batch's
        backward. With ZeRO (the distributed optimizer): a reduce-scatter of the gradients
        (same window) and, for stages 1-2, an all-gather of the updated weights overlapped
        with the next iteration's first forward. ZeRO-3 (FSDP) instead gathers each layer's
        weights before it runs, in every micro-batch's forward and again in its backward
        (resharded after the forward), `prefetch` layers ahead: per pass the gathers hide
        behind that pass's compute, the first layer's always exposed (all of them with
        prefetch 0). With a shard group (HSDP, `zero_group`) the states are sharded over the
        group and the gradient shards all-reduced across the groups' replicas. MoE expert
        parameters are replicated only over dp / ep ranks: their collectives run over that
        smaller group.

        Across servers, `ring.bandwidth_byte_s` is one GPU's share of its server's way out
        (every GPU of the job there runs a ring). A data-parallel group whose ranks share a
        server splits its collective over those rings (NCCL's channels, as dcsim collective
        models them), so one collective gets as many shares as the group has ranks on the
        server: g / r shares for g GPUs there and r = min(tp x pp, g) groups."""
        p = job.parallelism
        eff = prof.network_efficiency if ring.servers > 1 else prof.nvlink_efficiency
        bandwidth = ring.bandwidth_byte_s
        if ring.servers > 1 and ring.min_gpus_per_server > 1:
            g = ring.min_gpus_per_server
            channels = g / min(p.tp * p.cp * p.pp, g)
            bandwidth = min(ring.intra_bandwidth, bandwidth * channels)
        # gradients are reduced over the data- and context-parallel ranks (each cp rank saw a
        # part of every sequence)
        ranks = p.dp * p.cp
        shard = p.shard_ranks if p.zero else ranks
        groups = [(ranks, shard, split[0]),
                  (ranks // p.ep, max(1, shard // p.ep), split[1])]
        keep = 1 - job.prune_fraction
        reduce_s = gather_s = pass_gather_s = 0.0
        for n, s, params in groups:
            grads = params * keep * DTYPE_BYTES[p.grad_reduce_dtype]
            if p.zero == 0:
                reduce_s += Collectives(n, bandwidth * eff, ring.latency_s).all_reduce(grads)
                continue
            within = Collectives(s, bandwidth * eff, ring.latency_s)
            reduce_s += within.reduce_scatter(grads)
            if n > s:  # HSDP: each shard all-reduced across the n / s replicas
                reduce_s += Collectives(n // s, bandwidth * eff, ring.latency_s).all_reduce(
                    grads / s)
            gathered = within.all_gather(params * weight_bytes(job))
            if p.zero == 3:
                pass_gather_s += gathered
            else:
                gather_s += gathered
        back = pipe.last_backward_s if p.overlap_grad_comm else 0.0
        front = pipe.first_forward_s if p.overlap_grad_comm else 0.0
        # gradients are reduced in buckets as the backward pass produces them: the last
        # bucket's reduction starts after the backward ends, so it is never hidden
        last = Collectives(ranks, bandwidth * eff, ring.latency_s).all_reduce(
            min(split[0] * keep * DTYPE_BYTES[p.grad_reduce_dtype], GRAD_BUCKET_BYTES)
        ) if p.zero == 0 else 0.0
        exposed = max(last, reduce_s - back) + max(0.0, gather_s - front)
        if pass_gather_s:
            m = job.model
            layers = max(1, round(m.layers / p.pp)) if isinstance(m, GptModel) else 1
            micro = job.global_batch // (p.dp * p.micro_batch)
            if p.prefetch:  # behind the pass's compute, but for the first layer's gather
                exposed += micro * sum(
                    pass_gather_s / layers + max(0.0, pass_gather_s - compute)
                    for compute in (pipe.first_forward_s, pipe.last_backward_s))
            else:  # each layer waits for its gather: all of it exposed, twice a micro-batch
                exposed += micro * 2 * pass_gather_s
        return exposed

