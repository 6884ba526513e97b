"""Seconds per search episode next to its floor, with each evaluator trick on and off.

Usage: python benchmarks/bench_episode.py [--checkpoint benchmarks/checkpoints/resnet20-fmnist.pt]
       [--episodes 5] [--ratio 0.5] [--reward-val 5000] [--threads N] [--latency]

Workload: ResNet-20 on Fashion-MNIST (1x28x28), 5000 reward images, MACs target. The
floor of an episode is one forward pass of the same candidate, physically pruned, over
the same reward images in batches of 256, already in memory (the faster of two passes):
nothing an evaluator can avoid. Each configuration plays the same candidates (random
actions, seeded); every episode is timed and its floor measured right after it, so both
see the same machine load; the ratio is the median over candidates. The one-off costs
(building the environment, the dense evaluation, the probe episodes of ``mode="auto"``)
are reported separately. Without ``--checkpoint`` the weights are random (the timing
ratio does not depend on them). ``--latency`` also compares the latency target's lookup
estimate with the measured latency of a few walled candidates (batch 32).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from prunegym.envs import PruningEnv, make_pruning_env
from prunegym.experiments.data import build_data, build_data_like
from prunegym.experiments.models import build_model

CONFIGS: dict[str, dict[str, Any]] = {
    "all tricks on (auto route, BN recal 4x64, preloaded subset, cache)": {},
    "physical route off (always masked)": {"mode": "masked"},
    "BN recalibration off": {"bn_recalibration": False},
    "preloaded subset off (DataLoader each episode)": {"preload": False},
    "all tricks off (masked, no BN recal, DataLoader, no cache)": {
        "mode": "masked", "bn_recalibration": False, "preload": False, "cache": False,
    },
}  # fmt: skip


def floor_seconds(env: PruningEnv, info: dict[str, Any]) -> float:
    """One forward pass of the physically pruned candidate over the reward images."""
    small = env.pruner.apply(info["policy"]).eval()
    images = [x for x, _ in env.evaluator.batches()]  # the evaluator's subset, in memory
    times = []
    with torch.inference_mode():
        for _ in range(2):
            start = time.perf_counter()
            for x in images:
                small(x)
            times.append(time.perf_counter() - start)
    return min(times)


def play(env: gym.Env, actions: np.ndarray) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    env.reset(seed=0)
    info: dict[str, Any] = {}
    for a in actions:  # single-level units take no step: the episode may end early
        *_, terminated, _, info = env.step(np.array([a], dtype=np.float32))
        if terminated:
            break
    return time.perf_counter() - start, info


def bench(
    model: torch.nn.Module, data: Any, options: dict[str, Any], args: argparse.Namespace,
    candidates: np.ndarray, warmup: np.ndarray, floor_env: PruningEnv,
) -> dict[str, Any]:  # fmt: skip
    t0 = time.perf_counter()
    env = PruningEnv(model, data, ratio=args.ratio, evaluator_options=options)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    for actions in warmup:  # dense evaluation + probe episodes, with other candidates
        play(env, actions)
    one_off = time.perf_counter() - t0
    seconds, floors, parts = [], [], []
    for actions in candidates:
        s, info = play(env, actions)
        seconds.append(s)
        parts.append(info["seconds"])
        floors.append(floor_seconds(floor_env, info))
    repeat = [play(env, actions)[0] for actions in candidates[:2]]  # the same candidates again
    ratios = np.array(seconds) / np.array(floors)
    keys = ("steps", "evaluation_prune", "evaluation_bn", "evaluation_forward")
    return {
        "build_s": build,
        "one_off_s": one_off,
        "episode_s": float(np.median(seconds)),
        "floor_s": float(np.median(floors)),
        "ratio": float(np.median(ratios)),
        "ratio_max": float(ratios.max()),
        "repeat_s": float(np.median(repeat)),
        "route": env.evaluator.chosen_mode,
        "probes": {
            k: [round(t, 2) for t in v] for k, v in env.evaluator.stats["probe_seconds"].items()
        },
        "parts": {k: float(np.median([p.get(k, 0.0) for p in parts])) for k in keys},
    }


def latency_check(model: torch.nn.Module, data: Any, episodes: int) -> None:
    """The latency lookup's estimate next to the measured latency of walled candidates."""
    t0 = time.perf_counter()
    env = make_pruning_env(model, data, target="latency", ratio=0.8,
                           latency_options={"batch_size": 32},
                           evaluator_options={"subset_size": 256, "mode": "masked"})  # fmt: skip
    lookup = env.get_wrapper_attr("target").latency_table
    n_units = env.get_wrapper_attr("n_units")
    print(f"\n# latency target (ratio 0.8, batch 32): lookup built in "
          f"{time.perf_counter() - t0:.1f} s, {len(lookup.lookups)} layers timed, "
          f"dense {lookup.dense_ms:.1f} ms")  # fmt: skip
    print("| candidate | estimate ms | measured ms | estimate / measured | MACs ratio |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(1)
    for i in range(episodes):
        _, info = play(env, rng.uniform(-1, 1, n_units))
        m = info["metrics"]
        print(
            f"| {i} | {m['latency_estimate_ms']:.1f} | {m['latency_ms']:.1f} | "
            f"{m['latency_estimate_ms'] / m['latency_ms']:.2f} | {m['macs_ratio']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="trained ResNet-20 checkpoint")
    parser.add_argument("--episodes", type=int, default=5, help="timed candidates per config")
    parser.add_argument("--ratio", type=float, default=0.5, help="MACs ratio to keep")
    parser.add_argument("--reward-val", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--only", type=int, nargs="*", default=None, help="config indices")
    parser.add_argument("--latency", action="store_true", help="check the latency lookup too")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint:
        from prunegym.experiments.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        model = ckpt.build_model()
        described = ckpt.metadata.get("dataset") or {}
        if described.get("name") == "fashion-mnist":  # the split the model was trained beside
            data = build_data_like(described)
        else:
            data = build_data("fashion-mnist", reward_val_size=args.reward_val, seed=0)
        weights = f"checkpoint {args.checkpoint}"
    else:
        torch.manual_seed(0)
        model = build_model("resnet20", in_channels=1, num_classes=10).eval()
        data = build_data("fashion-mnist", reward_val_size=args.reward_val, seed=0)
        weights = "random weights (seed 0)"
    floor_env = PruningEnv(model, data, ratio=args.ratio, evaluator_options={"cache": False})
    n = floor_env.n_units
    rng = np.random.default_rng(0)
    candidates = rng.uniform(-1, 1, (args.episodes, n))
    warmup = rng.uniform(-1, 1, (3, n))  # dense evaluation, then the 2 probe episodes
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"# workload: resnet20 ({weights}), fashion-mnist, {len(data.reward_val)} reward "
          f"images, MACs ratio {args.ratio}, {n} units, {args.episodes} candidates")  # fmt: skip
    print("| configuration | s/episode | floor s | ratio (median) | ratio (max) | "
          "repeated candidate s | one-off s | route |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for i, (name, options) in enumerate(CONFIGS.items()):
        if args.only is not None and i not in args.only:
            continue
        r = bench(model, data, options, args, candidates, warmup, floor_env)
        results[name] = r
        print(f"| {name} | {r['episode_s']:.3f} | {r['floor_s']:.3f} | {r['ratio']:.2f}x | "
              f"{r['ratio_max']:.2f}x | {r['repeat_s']:.3f} | {r['one_off_s']:.2f} | "
              f"{r['route']} |", flush=True)  # fmt: skip
    print(f"# load average after: {os.getloadavg()[0]:.2f}")
    for name, r in results.items():
        parts = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in r["parts"].items())
        print(f"# {name}: {parts}; env build {r['build_s']:.2f} s; probes (s) {r['probes']}")
    if args.latency:
        latency_check(model, data, args.episodes)


if __name__ == "__main__":
    main()
