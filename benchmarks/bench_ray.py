"""Ray workers: seconds per candidate episode with 1..N workers against the serial path,
and the scale of one ResNet-50 episode on CPU.

Usage: python benchmarks/bench_ray.py [--checkpoint benchmarks/checkpoints/resnet20-fmnist.pt]
           [--episodes 8] [--workers 1 2] [--reward-val 5000]
       python benchmarks/bench_ray.py --resnet50 [--images 256] [--weights resnet50.pth]

Default workload: ResNet-20 on Fashion-MNIST (1x28x28), ``--reward-val`` reward images,
MACs ratio 0.5, evaluator cache off (every candidate is evaluated: the search is bound by
candidate evaluation). The serial path (one process, ``play_episode`` as the serial
searchers play) and the Ray pool with each worker count play the same candidates (random
actions, ``--seed``), one torch thread per worker (and in the serial process). Each path
first plays ``--warmup`` candidates per worker (dense evaluation, the ``auto`` route's
probes); they are not timed. The results must be identical on every path; the table says
whether they were. Without ``--checkpoint`` the weights are random (the timing does not
depend on them).

``--resnet50``: torchvision ResNet-50 (random weights unless ``--weights`` names a state
dict on disk; 224 px, 1000 classes) with ``--images`` random reward images and as many
calibration images: LayerTable build time, units, env build time, one episode on CPU
(``--mode`` physical by default: ``auto`` would probe both routes) and the process's
peak RSS.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import resource
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from prunegym.agents.episodes import play_episode
from prunegym.envs import PruningEnv
from prunegym.pruners import LayerTable


def peak_rss_gib() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def resnet20_workload(args: argparse.Namespace) -> tuple[torch.nn.Module, Any, str]:
    from prunegym.experiments.data import build_data, build_data_like
    from prunegym.experiments.models import build_model

    if args.checkpoint:
        from prunegym.experiments.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        described = ckpt.metadata.get("dataset") or {}
        if described.get("name") == "fashion-mnist":  # the split the model was trained beside
            data = build_data_like(described)
        else:
            data = build_data("fashion-mnist", reward_val_size=args.reward_val, seed=args.seed)
        return ckpt.build_model(), data, f"checkpoint {args.checkpoint}"
    torch.manual_seed(args.seed)
    model = build_model("resnet20", in_channels=1, num_classes=10).eval()
    data = build_data("fashion-mnist", reward_val_size=args.reward_val, seed=args.seed)
    return model, data, f"random weights (seed {args.seed})"


def timed_serial(env_fn: Any, warmup: np.ndarray, cands: np.ndarray) -> dict[str, Any]:
    """The serial path: one env in this process, one thread."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    env = env_fn()
    for actions in warmup:
        play_episode(env, lambda _o, t, a=actions: a[t], 0)
    one_off = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = [play_episode(env, lambda _o, t, a=a: a[t], i) for i, a in enumerate(cands)]
    seconds = time.perf_counter() - t0
    return {"s_per_episode": seconds / len(cands), "one_off_s": one_off,
            "rewards": [r.reward for r in records]}  # fmt: skip


def timed_pool(env_fn: Any, workers: int, warmup: np.ndarray, cands: np.ndarray) -> dict[str, Any]:
    """The Ray path: a pool of ``workers`` actors, one thread each."""
    from prunegym.agents.worker_pool import WorkerPool

    t0 = time.perf_counter()
    with WorkerPool(env_fn, workers, threads_per_worker=1) as pool:
        pool.evaluate_batch(np.concatenate([warmup] * workers), per_unit="actions")  # warm-up
        one_off = time.perf_counter() - t0
        t0 = time.perf_counter()
        outcomes = pool.evaluate_batch(cands, per_unit="actions")  # as play_episode: by unit
        seconds = time.perf_counter() - t0
    return {"s_per_episode": seconds / len(cands), "one_off_s": one_off,
            "rewards": [o.reward for o in outcomes]}  # fmt: skip


def bench_workers(args: argparse.Namespace) -> None:
    from prunegym.agents.ray_cluster import init_ray

    model, data, weights = resnet20_workload(args)
    options = {"cache": False, "mode": args.mode or "auto"}
    env_fn = functools.partial(PruningEnv, model, data, ratio=args.ratio,
                               evaluator_options=options)  # fmt: skip
    n = env_fn().n_units
    rng = np.random.default_rng(args.seed)
    warmup = rng.uniform(-1, 1, (args.warmup, n))
    cands = rng.uniform(-1, 1, (args.episodes, n))
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"# workload: resnet20 ({weights}), fashion-mnist, {len(data.reward_val)} reward "
          f"images, MACs ratio {args.ratio}, {n} units, {args.episodes} candidates, seed "
          f"{args.seed}, evaluator {options}")  # fmt: skip
    rows = {"serial": timed_serial(env_fn, warmup, cands)}
    t0 = time.perf_counter()
    init_ray(None, max(args.workers), {"num_cpus": 1})
    ray_start = time.perf_counter() - t0
    for k in args.workers:
        rows[f"ray:{k}"] = timed_pool(env_fn, k, warmup, cands)
    base = rows.get("ray:1")
    print("| path | workers | threads / worker | s / episode | speed-up vs Ray 1 worker | "
          "vs serial | one-off s (build + warm-up) | same results as serial |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    serial = rows["serial"]
    for name, r in rows.items():
        workers = 1 if name == "serial" else int(name.split(":")[1])
        up = (
            f"{base['s_per_episode'] / r['s_per_episode']:.2f}x"
            if base and name != "serial"
            else "-"
        )
        vs = f"{serial['s_per_episode'] / r['s_per_episode']:.2f}x"
        same = "yes" if r["rewards"] == serial["rewards"] else "NO"
        print(f"| {name.split(':')[0]} | {workers} | 1 | {r['s_per_episode']:.3f} | {up} | {vs} | "
              f"{r['one_off_s']:.1f} | {same} |")  # fmt: skip
    if base:
        overhead = base["s_per_episode"] / serial["s_per_episode"] - 1
        print(f"# Ray path at 1 worker against the serial path: {overhead:+.1%} per episode "
              f"(target: within 10%); Ray start {ray_start:.1f} s (once per search)")  # fmt: skip
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


def bench_resnet50(args: argparse.Namespace) -> None:
    import torchvision

    torch.manual_seed(args.seed)
    model = torchvision.models.resnet50(weights=None, num_classes=1000).eval()
    weights = "random weights"
    if args.weights:
        model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
        weights = f"weights {args.weights}"
    gen = torch.Generator().manual_seed(args.seed)

    def split(m: int) -> TensorDataset:
        return TensorDataset(torch.randn(m, 3, 224, 224, generator=gen),
                             torch.randint(0, 1000, (m,), generator=gen))  # fmt: skip

    data = SimpleNamespace(reward_val=split(args.images), train=split(args.images))
    example = torch.randn(1, 3, 224, 224, generator=gen)
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(
        f"# resnet50 ({weights}), {args.images} reward + {args.images} calibration images "
        f"(random, 224 px, {2 * args.images * 3 * 224 * 224 * 4 / 2**20:.0f} MiB as float32)"
    )
    t0 = time.perf_counter()
    table = LayerTable.from_model(model, example, "channel")
    table_s = time.perf_counter() - t0
    options = {"mode": args.mode or "physical", "bn_batch_size": min(64, args.images)}
    t0 = time.perf_counter()
    env = PruningEnv(model, data, ratio=args.ratio, example_input=example,
                     evaluator_options=options)  # fmt: skip
    env_s = time.perf_counter() - t0
    actions = np.random.default_rng(args.seed).uniform(-1, 1, env.n_units)
    t0 = time.perf_counter()
    env.reset(seed=args.seed)
    for a in actions:
        *_, info = env.step(np.array([a], dtype=np.float32))
    episode_s = time.perf_counter() - t0
    sec = info["seconds"]
    print("| LayerTable build s | units | env build s | episode s | of which dense eval s | "
          "candidate eval s | MACs ratio | peak RSS GiB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {table_s:.1f} | {len(table)} | {env_s:.1f} | {episode_s:.1f} | "
          f"{sec.get('dense_evaluation', 0.0):.1f} | {sec['evaluation']:.1f} | "
          f"{info['macs_ratio']:.3f} | {peak_rss_gib():.2f} |")  # fmt: skip
    ev = env.evaluator
    print(f"# evaluator: {options}; preloaded slices (cap {ev.preload_max_mb:g} MiB, the "
          f"rest streams): {ev.preloaded}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="trained ResNet-20 checkpoint")
    parser.add_argument("--episodes", type=int, default=8, help="timed candidates per path")
    parser.add_argument("--warmup", type=int, default=3, help="untimed candidates per worker")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reward-val", type=int, default=5000)
    parser.add_argument("--ratio", type=float, default=0.5, help="MACs ratio to keep")
    parser.add_argument("--mode", choices=("auto", "masked", "physical"), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resnet50", action="store_true", help="the ResNet-50 scale figures")
    parser.add_argument("--images", type=int, default=256, help="ResNet-50 reward images")
    parser.add_argument("--weights", default=None, help="ResNet-50 state dict (optional)")
    args = parser.parse_args()
    if args.resnet50:
        bench_resnet50(args)
    else:
        bench_workers(args)


if __name__ == "__main__":
    main()
