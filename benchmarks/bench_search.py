"""Search benchmark: best reward after N episodes for DDPG (AMC settings) and for the
baselines with the same N and seed, the best-so-far curve as a PNG, seconds per episode
against the floor (one dense forward pass over the reward subset).

    .venv/bin/python benchmarks/bench_search.py --config configs/resnet20-fmnist.yaml \
        --episodes 100 --warmup 25 --agents ddpg random --out benchmarks/out/search

Writes OUT/<agent>/ (ordinary ``prunegym search`` run directories), OUT/curve.png,
OUT/results.json, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/resnet20-fmnist.yaml")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--warmup", type=int, default=25, help="DDPG warm-up episodes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--agents", nargs="+", default=["ddpg", "random"])
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/search"))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    from prunegym.experiments.config import load_config
    from prunegym.experiments.search import build_env, build_workload, run_search

    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    base = [*args.overrides, f"search.episodes={args.episodes}", f"seed={args.seed}",
            "run.progress=false", "run.checkpoint_every=25"]  # fmt: skip

    # the floor: one dense evaluation over the reward subset
    cfg = load_config(args.config, base)
    model, data = build_workload(cfg)
    env = build_env(cfg, model, data)
    evaluator = env.get_wrapper_attr("evaluator")
    floor = []
    for _ in range(3):
        t = time.perf_counter()
        evaluator.evaluate_model(env.get_wrapper_attr("model"))
        floor.append(time.perf_counter() - t)
    floor_s = statistics.median(floor)
    n_units = env.get_wrapper_attr("n_units")
    del env

    results = {}
    for agent in args.agents:
        opts = f"search.options={{warmup_episodes: {args.warmup}}}" if agent == "ddpg" else (
            "search.options={}")  # fmt: skip
        cfg = load_config(args.config, [*base, f"search.agent={agent}", opts])
        run_dir = args.out / agent
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        start = time.perf_counter()
        outcome = run_search(cfg, run_dir, command=["bench_search.py", agent])
        wall = time.perf_counter() - start
        hist = outcome.result.history
        secs = [r.seconds for r in hist]
        best = outcome.result.best
        results[agent] = {
            "episodes": len(hist),
            "best_reward": best.reward,
            "best_episode": best.episode,
            "best_metrics": dict(best.metrics),
            "best_so_far": outcome.result.best_so_far().tolist(),
            "seconds_per_episode_median": statistics.median(secs),
            "seconds_per_episode_mean": float(np.mean(secs)),
            "wall_seconds": wall,
        }
        print(f"{agent}: best {best.reward:.4f} at episode {best.episode}, "
              f"{statistics.median(secs):.3f} s/episode", flush=True)  # fmt: skip

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for agent, r in results.items():
        ax.plot(np.arange(1, len(r["best_so_far"]) + 1), r["best_so_far"], label=agent)
    ax.set_xlabel("episode")
    ax.set_ylabel("best reward so far")
    ax.set_title(f"{Path(args.config).stem}, seed {args.seed}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "curve.png", dpi=120)
    summary = {"config": args.config, "episodes": args.episodes, "seed": args.seed,
               "warmup": args.warmup, "units": n_units, "floor_seconds": floor_s,
               "threads": torch.get_num_threads(), "results": results}  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nfloor (dense evaluation of the reward subset): {floor_s:.3f} s; {n_units} units\n")
    print("| searcher | episodes | best reward | at episode | accuracy | MACs ratio | "
          "s/episode (median) | / floor |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for agent, r in results.items():
        m = r["best_metrics"]
        print(f"| {agent} | {r['episodes']} | {r['best_reward']:.4f} | {r['best_episode']} | "
              f"{m.get('accuracy', float('nan')):.4f} | {m.get('macs_ratio', float('nan')):.3f} | "
              f"{r['seconds_per_episode_median']:.3f} | "
              f"{r['seconds_per_episode_median'] / floor_s:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
