#!/usr/bin/env python3
"""Vendor reference for scripts/device-check: PyTorch's scaled_dot_product_attention on the same
shapes as `tca bench` (causal prefill of L tokens, and one decode query against L cached keys),
f16, GQA through enable_gqa. Times are CUDA-event medians after warm-up, written as JSON.

Usage: torch_sdpa.py --lengths 4096,16384 --heads 32 --kv-heads 8 --dim 128 --out sdpa.json
Exits 3 (and writes nothing) when torch or a CUDA device is missing, so callers can skip it."""
import argparse
import json
import statistics
import sys


def timed(fn, runs, warmup, torch):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="4096,16384,32768,65536,131072")
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-prefill", type=int, default=131072, help="longest prefill timed")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch_sdpa: no torch", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("torch_sdpa: no CUDA device", file=sys.stderr)
        return 3
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(1)
    h, hk, d = args.heads, args.kv_heads, args.dim
    records = []
    for L in [int(x) for x in args.lengths.split(",")]:
        k = torch.randn(1, hk, L, d, device=dev, dtype=torch.float16, generator=g)
        v = torch.randn(1, hk, L, d, device=dev, dtype=torch.float16, generator=g)
        q1 = torch.randn(1, h, 1, d, device=dev, dtype=torch.float16, generator=g)
        decode = timed(lambda: F.scaled_dot_product_attention(q1, k, v, enable_gqa=True), args.runs * 4,
                       args.warmup, torch)
        kv_bytes = 2 * hk * L * d * 2
        rec = {"length": L, "decode_ms": decode, "decode_kv_gbps": kv_bytes / (decode * 1e6)}
        if L <= args.max_prefill:
            q = torch.randn(1, h, L, d, device=dev, dtype=torch.float16, generator=g)
            rec["prefill_ms"] = timed(
                lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), args.runs,
                args.warmup, torch)
            del q
        records.append(rec)
        print(f"sdpa L={L:7d} decode {decode:8.4f} ms ({rec['decode_kv_gbps']:7.1f} GB/s K+V)"
              + (f", prefill {rec['prefill_ms']:9.3f} ms" if "prefill_ms" in rec else ""))
        del k, v, q1
        torch.cuda.empty_cache()
    doc = {"reference": "torch.nn.functional.scaled_dot_product_attention", "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(0), "heads": h, "kv_heads": hk, "dim": d, "dtype": "f16",
           "records": records}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
