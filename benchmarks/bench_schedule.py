"""Schedule benchmark: pruning in steps against pruning at once, at equal cost.

From a schedule config (``run.schedule``, ``search.episodes`` per step,
``run.epochs_per_step``), for every seed:

- ``schedule``: the config as it is (S steps);
- ``one-shot``: one search at the final budget with S times the episodes (and S times
  the warm-up), then S * ``epochs_per_step`` fine-tuning epochs: the same evaluated
  candidates and fine-tuning epochs in all;
- ``schedule-uniform`` and ``one-shot-uniform``: the uniform policy in both forms (one
  evaluation per search), the control; ``--uniform-round-to N`` rounds their channel
  counts to N instead of ``env.round_to`` (a uniform cut of already narrowed layers
  overshoots its budget when rounded coarsely).

Every run is an ordinary ``prunegym run`` directory under OUT (a schedule directory for
the schedules); a finished run is read back, an interrupted one resumed. Prints a
Markdown table of test top-1 after fine-tuning (mean +- std over the seeds) and the
MACs ratio, and writes OUT/results.json.

    python benchmarks/bench_schedule.py --config configs/schedule-resnet20-fmnist.yaml \
        --seeds 0 1 2 --out benchmarks/out/schedule
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

ARMS = ("one-shot", "schedule", "one-shot-uniform", "schedule-uniform")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--config", type=Path, required=True, help="a config with run.schedule")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="override a config key (every arm)")  # fmt: skip
    p.add_argument("--uniform-round-to", type=int, default=None,
                   help="env.round_to of the uniform arms (default: the config's)")  # fmt: skip
    p.add_argument("--latency-repeats", type=int, default=3, help="latency runs per round")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/schedule"))
    return p.parse_args(argv)


def arm_config(
    cfg: Any, arm: str, seed: int, uniform_round_to: int | None = None
) -> tuple[Any, int]:
    """The config of ``arm`` at ``seed`` and its fine-tuning epochs (a schedule's come
    from ``run.epochs_per_step``)."""
    steps = len(cfg.run.schedule)
    per_step = int(cfg.run.epochs_per_step or 0)
    changes: dict[str, Any] = {"seed": seed}
    if arm.endswith("uniform"):
        changes.update({"search.agent": "uniform", "search.options": {}, "search.episodes": 1})
        if uniform_round_to is not None:
            changes["env.round_to"] = uniform_round_to
    if arm.startswith("one-shot"):
        changes.update({"run.schedule": None, "env.ratio": cfg.run.schedule[-1]})
        if not arm.endswith("uniform"):
            options = dict(cfg.search.options)
            if "warmup_episodes" in options:
                options["warmup_episodes"] = int(options["warmup_episodes"]) * steps
            changes.update({"search.episodes": cfg.search.episodes * steps,
                            "search.options": options})  # fmt: skip
    return cfg.replace(**changes), per_step * steps


def run_arm(cfg: Any, out: Path, epochs: int, latency_repeats: int) -> dict[str, Any]:
    """Run (or read back, or resume) one arm; its final test top-1 and cost."""
    from prunegym.experiments.export import ExportOptions
    from prunegym.experiments.pipeline import run_pipeline
    from prunegym.experiments.schedule import SCHEDULE_FILE, run_schedule

    metrics_path = out / "export" / "metrics.json"
    if metrics_path.is_file():
        m = json.loads(metrics_path.read_text())
    else:
        opts = ExportOptions(epochs=epochs, latency_repeats=latency_repeats, progress=False)
        if cfg.run.schedule is not None:
            m = run_schedule(cfg, out, opts, resume=(out / SCHEDULE_FILE).is_file())
        else:
            m = run_pipeline(cfg, out, opts, resume=(out / "checkpoint.zip").is_file())
    if m.get("kind") == "schedule":
        last = m["steps"][-1]
        episodes = sum(s["episodes"] for s in m["steps"])
        return {"top1": last["top1"], "macs_ratio": last["macs_ratio"], "episodes": episodes,
                "epochs": sum(s["fine_tune_epochs"] for s in m["steps"])}  # fmt: skip
    return {"top1": m["pruned"]["top1"], "macs_ratio": m["pruned"]["macs"] / m["dense"]["macs"],
            "episodes": m["search"]["episodes"], "epochs": m["fine_tune"]["epochs"]}  # fmt: skip


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} +- {100 * std:.2f}"


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: one row per arm, mean +- std over the seeds."""
    lines = ["| arm | seeds | evaluated candidates | fine-tune epochs | MACs ratio | "
             "test top-1 (%) |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for arm, rows in results.items():
        lines.append(f"| {arm} | {len(rows)} | {rows[0]['episodes']} | {rows[0]['epochs']} | "
                     f"{statistics.mean(r['macs_ratio'] for r in rows):.3f} | "
                     f"{_mean_std([r['top1'] for r in rows])} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from prunegym.experiments.config import load_config

    args = parse_args(argv)
    base = load_config(args.config, args.overrides)
    if not base.run.schedule:
        raise SystemExit(f"{args.config} has no run.schedule")
    results: dict[str, list[dict[str, Any]]] = {}
    for arm in args.arms:
        for seed in args.seeds:
            cfg, epochs = arm_config(base, arm, seed, args.uniform_round_to)
            row = run_arm(cfg, args.out / f"{arm}-s{seed}", epochs, args.latency_repeats)
            results.setdefault(arm, []).append({"seed": seed, **row})
            print(f"{arm} seed {seed}: test top-1 {100 * row['top1']:.2f}%, MACs ratio "
                  f"{row['macs_ratio']:.3f}", flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
