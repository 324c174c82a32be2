"""Speed and memory of the alignment analysis on synthetic activations (experiment 000).

1. StreamingCorrelation throughput (tokens/s) for one layer pair, gpt2 x gpt2-medium widths
   (3072 x 4096) scaled by ``--width-scale``, on the CPU and on CUDA when present, beside the
   bound a plain matmul of the same shape implies on the same device (2 x d_a x d_b FLOP per
   token; the accumulator also keeps B's second moment for the rotation baselines, which costs
   2 x d_b^2 more, shown separately), and a pair with its token-shuffle null as the pipeline
   streams it (the null sharing the real accumulator's sums, against two full accumulators).
2. Neuron matching time at the same widths: ``emd`` (POT network simplex), ``sinkhorn``
   (POT log-domain) and ``hungarian`` (SciPy), on the correlation matrix of noisy copies.
3. Peak memory of streaming the seed's 500 x 64 tokens against ``--memory-tokens`` tokens (5M by
   default) in chunks, each in a fresh process (peak RSS; on CUDA also the peak allocated GPU
   memory): memory must not grow with the token count.

    python benchmarks/alignment_speed.py [--quick] [--width-scale 1] [--threads N] [--no-cuda]

Figures are from one run; a shared machine makes them noisy.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

from akira_nb import runtime
from akira_nb.alignment.correlation import SharedMarginalsCorrelation, StreamingCorrelation
from akira_nb.alignment.transport import match_neurons

D_A, D_B = 3072, 4096


def widths(scale: float) -> tuple[int, int]:
    return max(8, round(D_A * scale)), max(8, round(D_B * scale))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def streaming(device: torch.device, d_a: int, d_b: int, batch: int, batches: int) -> None:
    dtype = torch.float32
    g = torch.Generator(device=device).manual_seed(0)
    xa = torch.randn(batch, d_a, device=device, dtype=dtype, generator=g)
    xb = torch.randn(batch, d_b, device=device, dtype=dtype, generator=g)
    compute = "float32" if device.type == "cuda" else "float64"
    cd = torch.float32 if compute == "float32" else torch.float64
    a, b = xa.to(cd), xb.to(cd)
    t_mm = timed(lambda: a.T @ b, device, batches)
    t_mm_bb = timed(lambda: b.T @ b, device, batches)
    flop = 2 * d_a * d_b
    print(f"  {device.type}: batches of {batch} tokens, products in {compute}, sums in float64")
    print(
        f"    plain matmul bound  {batch / t_mm:12,.0f} tokens/s "
        f"({flop * batch / t_mm / 1e9:7.1f} GFLOP/s at {flop / 1e6:.1f} MFLOP/token)"
    )
    print(
        f"    bound incl. B^T B   {batch / (t_mm + t_mm_bb):12,.0f} tokens/s "
        f"(+{2 * d_b * d_b / 1e6:.1f} MFLOP/token)"
    )
    for track in (False, True):
        sc = StreamingCorrelation(d_a, d_b, device=device, track_b_cov=track, compute_dtype=compute)
        t = timed(lambda sc=sc: sc.update(xa, xb), device, batches)
        label = "with B cov" if track else "no B cov  "
        print(
            f"    StreamingCorrelation {label} {batch / t:12,.0f} tokens/s "
            f"({sc.nbytes / 2**20:,.0f} MiB of accumulators)"
        )
    # a layer pair as the AQ pipeline streams it: the real accumulator and its token-shuffle
    # null, the null either a second full accumulator or one sharing the real one's sums
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(1)).to(device)
    for shared in (False, True):
        real = StreamingCorrelation(d_a, d_b, device=device, compute_dtype=compute)
        null = (
            SharedMarginalsCorrelation(real)
            if shared
            else StreamingCorrelation(d_a, d_b, device=device, compute_dtype=compute)
        )

        def step(real=real, null=null):
            real.update(xa, xb)
            null.update(xa, xb[perm])

        t = timed(step, device, batches)
        label = "null sharing sums" if shared else "two full accumulators"
        print(
            f"    pair + null, {label:21s} {batch / t:12,.0f} tokens/s "
            f"({(real.nbytes + null.nbytes) / 2**20:,.0f} MiB)"
        )


def matching(d_a: int, d_b: int, tokens: int, reg: float, skip: list[str]) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((tokens, d_a), dtype=np.float32)
    b = rng.standard_normal((tokens, d_b), dtype=np.float32)
    cols = rng.permutation(d_b)[:d_a]
    b[:, cols] = 0.6 * a + 0.8 * b[:, cols]  # planted r = 0.6
    corr = StreamingCorrelation(d_a, d_b, device="cpu", track_b_cov=False).update(a, b).corr()
    print(f"  {d_a} x {d_b}, correlations from {tokens} tokens, every A neuron planted at r = 0.6")
    ref = None
    for method in ("hungarian", "emd", "sinkhorn"):
        if method in skip:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = match_neurons(corr, method=method, reg=reg)
        ref = ref or m
        extra = f", reg {reg}" if method == "sinkhorn" else ""
        print(
            f"    {method:9s} {m.seconds:8.2f} s  converged={m.converged}  "
            f"planted found {m.accuracy(cols):.3f}  agrees with hungarian {m.agreement(ref):.3f}"
            f"{extra}{'  warning: ' + str(caught[0].message)[:80] if caught else ''}"
        )


def memory_child(tokens: int, d_a: int, d_b: int, chunk: int, device: str) -> None:
    """Runs in a fresh process: stream ``tokens`` synthetic tokens, print peak memory as JSON."""
    dev = torch.device(device)
    sc = StreamingCorrelation(d_a, d_b, device=dev)
    g = torch.Generator(device=dev).manual_seed(0)
    # a 16-token warm-up first, so that the imports, BLAS and the accumulators are in the
    # baseline and the rest measures what streaming the tokens adds
    sc.update(torch.randn(16, d_a, device=dev), torch.randn(16, d_b, device=dev))
    sc.reset()
    sync(dev)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    while sc.n < tokens:
        n = min(chunk, tokens - sc.n)
        xa = torch.randn(n, d_a, device=dev, generator=g)
        xb = torch.randn(n, d_b, device=dev, generator=g)
        sc.update(xa, xb)
        del xa, xb  # the next chunk's buffers replace these ones, not join them
    sync(dev)
    out = {
        "tokens": sc.n,
        "seconds": time.perf_counter() - start,
        "rss_before_mib": base / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "accumulators_mib": sc.nbytes / 2**20,
    }
    if dev.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    print(json.dumps(out))


def memory(devices, d_a, d_b, small: int, large: int, chunk: int, threads: int | None) -> None:
    for device in devices:
        print(
            f"  {device.type}: {d_a} x {d_b}, chunks of {chunk} tokens, one fresh process per count"
        )
        for tokens in (small, large):
            cmd = [sys.executable, __file__, "--_memory-child", str(tokens), str(d_a), str(d_b)]
            cmd += [str(chunk), str(device)]
            if threads:
                cmd += ["--threads", str(threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            cuda = f", peak CUDA {r['peak_cuda_mib']:,.0f} MiB" if "peak_cuda_mib" in r else ""
            print(
                f"    {r['tokens']:>10,} tokens: peak RSS {r['peak_rss_mib']:,.0f} MiB "
                f"(before streaming {r['rss_before_mib']:,.0f} MiB){cuda}; "
                f"accumulators {r['accumulators_mib']:,.0f} MiB; {r['seconds']:.1f} s"
            )


def main() -> None:
    p = runtime.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small widths and token counts (~1 min)")
    p.add_argument("--width-scale", type=float, default=None, help="scale 3072 x 4096 (default 1)")
    p.add_argument("--batch", type=int, default=4096, help="tokens per streaming batch")
    p.add_argument("--batches", type=int, default=10, help="timed streaming batches")
    p.add_argument("--match-tokens", type=int, default=2000, help="tokens behind the matching")
    p.add_argument("--reg", type=float, default=0.05, help="Sinkhorn regularisation")
    p.add_argument("--skip", nargs="*", default=[], choices=["emd", "sinkhorn", "hungarian"])
    p.add_argument("--memory-tokens", type=int, default=None, help="large count (default 5M)")
    p.add_argument("--chunk", type=int, default=8192, help="tokens per chunk in the memory test")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    p.add_argument("--no-cuda", action="store_true")
    p.add_argument("--only", nargs="*", default=["stream", "match", "memory"])
    p.add_argument("--_memory-child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._memory_child:
        tokens, d_a, d_b, chunk, device = args._memory_child
        memory_child(int(tokens), int(d_a), int(d_b), int(chunk), device)
        return
    scale = args.width_scale or (0.125 if args.quick else 1.0)
    large = args.memory_tokens or (200_000 if args.quick else 5_000_000)
    batches = 3 if args.quick else args.batches
    d_a, d_b = widths(scale)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda"))
    print(
        f"alignment benchmark: widths {d_a} x {d_b} (scale {scale:g} of 3072 x 4096), "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if len(devices) > 1 else ", no CUDA")
    )
    if "stream" in args.only:
        print("streaming correlation (one layer pair)")
        for device in devices:
            streaming(device, d_a, d_b, args.batch, batches)
    if "match" in args.only:
        print("neuron matching (cost 1 - |corr|)")
        matching(d_a, d_b, args.match_tokens, args.reg, args.skip)
    if "memory" in args.only:
        print(f"peak memory: the seed's 500 x 64 = 32,000 tokens vs {large:,} tokens")
        memory(devices, d_a, d_b, 32_000, large, args.chunk, args.threads)


if __name__ == "__main__":
    main()
