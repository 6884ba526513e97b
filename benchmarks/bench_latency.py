"""CPU latency of a dense checkpoint against its exported pruned model.

Usage: python benchmarks/bench_latency.py RUN_DIR [--batches 1 64] [--threads 2]

RUN_DIR is a run with an export (``prunegym export``). Prints the median latency of
each model at each batch size, the speed-up, and the MACs reduction beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from prunegym.experiments.checkpoint import load_checkpoint
from prunegym.experiments.config import load_config
from prunegym.experiments.export import BASE_MODEL_FILE
from prunegym.pruners import count_cost, load_pruned, measure_latency


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()
    base = args.run_dir / BASE_MODEL_FILE
    if not base.is_file():
        base = Path(load_config(args.run_dir / "config.yaml").workload.checkpoint)
    ckpt = load_checkpoint(base)
    dense = ckpt.build_model()
    pruned = load_pruned(args.run_dir / "export" / "model.pt")
    size = ckpt.metadata["dataset"].get("image_size") or [28, 28]
    x = torch.randn(1, ckpt.model_spec["in_channels"], *size)
    reduction = count_cost(dense, x).macs / count_cost(pruned, x).macs
    print(f"MACs reduction {reduction:.2f}x, {args.threads} thread(s), torch {torch.__version__}")
    print("| batch | dense ms | pruned ms | speed-up | speed-up / MACs reduction |")
    print("|---|---|---|---|---|")
    for b in args.batches:
        xb = x.repeat(b, 1, 1, 1)
        d = measure_latency(dense, xb, threads=args.threads, repeats=args.repeats)
        q = measure_latency(pruned, xb, threads=args.threads, repeats=args.repeats)
        speedup = d.median_ms / q.median_ms
        print(f"| {b} | {d.median_ms:.2f} | {q.median_ms:.2f} | {speedup:.2f}x | "
              f"{speedup / reduction:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
