"""Cost of the pruning engine's operations, the overheads of one search episode.

Usage: python benchmarks/bench_pruners.py [--models resnet20 resnet56 mobilenetv2 vgg11]

Prints a Markdown table: table build, analytic cost of one policy, mask + unmask,
physical apply (graph build + prune + validation), one reconstruction solve for every
consumer layer, and one dense forward pass of a batch of 256 for scale.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from prunegym.experiments.models import build_model
from prunegym.pruners import ChannelPruner, LayerTable, PruningPolicy, Reconstructor


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench(name: str, in_channels: int, size: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(name, in_channels=in_channels).eval()
    x = torch.randn(1, in_channels, size, size)
    batch = torch.randn(256, in_channels, size, size)
    table = LayerTable.from_model(model, x)
    policy = PruningPolicy.uniform(table, 0.5)
    kept = table.kept_counts(policy.as_array(table))
    pruner = ChannelPruner(model, table)
    recon = Reconstructor(model, table, [torch.randn(64, in_channels, size, size)])
    refit = ChannelPruner(model, table, reconstruction=recon)

    def mask_unmask(p: ChannelPruner = pruner) -> None:
        p.mask(policy)
        p.unmask()

    with torch.inference_mode():
        forward = timed(lambda: model(batch), 5)
    return {
        "units": len(table),
        "build_s": timed(lambda: LayerTable.from_model(model, x), 3),
        "cost_us": timed(lambda: table.cost_of_kept(kept), 200) * 1e6,
        "mask_ms": timed(mask_unmask, 20) * 1e3,
        "mask_recon_ms": timed(lambda: mask_unmask(refit), 5) * 1e3,
        "apply_s": timed(lambda: pruner.apply(policy), 3),
        "forward256_ms": forward * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "vgg11",
                                                        "mobilenetv2"])  # fmt: skip
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--in-channels", type=int, default=1)
    args = parser.parse_args()
    shape = f"{args.in_channels}x{args.size}x{args.size}"
    print(f"# {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, input {shape}")  # fmt: skip
    cols = ["units", "build_s", "cost_us", "mask_ms", "mask_recon_ms", "apply_s", "forward256_ms"]
    print("| model | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name in args.models:
        row = bench(name, args.in_channels, args.size)
        print(f"| {name} | " + " | ".join(f"{row[c]:.3g}" for c in cols) + " |")


if __name__ == "__main__":
    main()
