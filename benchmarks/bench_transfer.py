"""Transfer benchmark: what a source search's agent (or its policy's profile) is worth on
models it has never seen, at equal numbers of evaluated candidates.

For every target config, seed and K (evaluations): the zero-shot agent (1 evaluation),
the profile transfer (1), uniform (1), random search (K), DDPG from scratch (K, with
``max(1, K // 4)`` warm-up episodes) and the transferred agent fine-tuned to K
evaluations (the zero-shot episode plus K - 1 fine-tune episodes). Each is an ordinary
``prunegym search`` run directory under OUT; ``--export-epochs E`` also fine-tunes best
policies for E epochs (on ``--export-samples`` seeded train images; all by default) and
reports their test accuracy before and after it: those of the single-evaluation methods
and of the runs whose K is in ``--export-at`` (default: every K). Prints a Markdown
table (mean +- std over the seeds) and writes OUT/results.json after every target. A
finished run is read back from its directory (``bench_row.json``), so an interrupted
benchmark continues where it stopped and targets can be split across processes with
different ``--out``.

    .venv/bin/python benchmarks/bench_transfer.py --source runs/transfer-source-resnet20 \
        --targets configs/transfer-target-resnet56.yaml configs/transfer-target-plain20.yaml \
        configs/transfer-target-vgg16.yaml configs/transfer-target-tv-mobilenet-v3-small.yaml \
        --seeds 0 1 2 --k 1 10 30 --out benchmarks/out/transfer

``--generalist RUN`` adds the transfer rows of a generalist agent: ``RUN`` is a ``prunegym
search`` run with ``search.workloads`` (e.g. ``configs/transfer-generalist-fmnist.yaml``).
The source runs must hold ``agent.zip`` and ``agent.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

METHODS = ("zero-shot", "profile", "uniform", "random", "ddpg-scratch", "transfer+ft")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--source", type=Path, required=True, help="the source search run directory")
    p.add_argument("--targets", nargs="+", type=Path, required=True, help="target configs")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--k", nargs="+", type=int, default=[1, 10, 30], help="evaluations")
    p.add_argument("--generalist", type=Path, default=None,
                   help="a generalist's run directory (search.workloads)")  # fmt: skip
    p.add_argument("--export-epochs", type=int, default=0, help="fine-tune epochs (0: none)")
    p.add_argument("--export-samples", type=int, default=None,
                   help="fine-tune on this many seeded train images (default: all)")  # fmt: skip
    p.add_argument("--export-at", nargs="+", type=int, default=None,
                   help="fine-tune only at these K (and 1-evaluation methods)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="override a key of every target config")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/transfer"))
    args = p.parse_args(argv)
    if min(args.k) < 1:
        p.error("--k values must be >= 1")
    if args.export_at is not None and not set(args.export_at) <= set(args.k):
        p.error("--export-at values must be among --k")
    return args


ROW_FILE = "bench_row.json"
SINGLE_EVALUATION = ("zero-shot", "profile", "uniform")


def exported(spec: dict[str, Any], args: argparse.Namespace) -> bool:
    """Whether the run of ``spec`` is fine-tuned for its test accuracy."""
    if args.export_epochs <= 0:
        return False
    if args.export_at is None or spec["method"].split(" ")[0] in SINGLE_EVALUATION:
        return True
    return int(spec["k"]) in args.export_at


def plan(args: argparse.Namespace, sources: dict[str, Path]) -> list[dict[str, Any]]:
    """Every run of the benchmark: method, source, evaluations, searcher and options."""
    runs: list[dict[str, Any]] = []
    for name, src in sources.items():
        tag = "" if name == "source" else f" ({name})"
        runs.append({"method": f"zero-shot{tag}", "k": 1, "agent": "transfer",
                     "options": {"source": str(src)}})  # fmt: skip
        runs += [{"method": f"transfer+ft{tag}", "k": k, "agent": "transfer",
                  "options": {"source": str(src)}} for k in args.k if k > 1]  # fmt: skip
    runs.append({"method": "profile", "k": 1, "agent": "profile",
                 "options": {"source": str(args.source)}})  # fmt: skip
    runs.append({"method": "uniform", "k": 1, "agent": "uniform", "options": {}})
    runs += [{"method": "random", "k": k, "agent": "random", "options": {}} for k in args.k]
    runs += [{"method": "ddpg-scratch", "k": k, "agent": "ddpg",
              "options": {"warmup_episodes": max(1, k // 4)}} for k in args.k]  # fmt: skip
    return runs


def run_one(target: Path, seed: int, spec: dict[str, Any], args: argparse.Namespace,
            run_dir: Path) -> dict[str, Any]:  # fmt: skip
    """One search run directory; its best policy's proxy (and test) accuracy. A run that
    finished before (its ``bench_row.json`` written last) is read back, not redone."""
    from prunegym.experiments.config import apply_overrides, from_dict, load_config
    from prunegym.experiments.search import run_search
    from prunegym.utils.files import write_json

    if (run_dir / ROW_FILE).is_file():
        return with_test_before_fine_tune(dict(json.loads((run_dir / ROW_FILE).read_text())),
                                          run_dir)  # fmt: skip

    data = load_config(target).to_dict()
    data["search"] = {"agent": spec["agent"], "episodes": spec["k"], "options": spec["options"]}
    data["seed"] = seed
    quiet = {"run.progress": False, "run.tensorboard": False}
    cfg = from_dict(apply_overrides(apply_overrides(data, args.overrides), quiet))
    if run_dir.exists():
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    outcome = run_search(cfg, run_dir, command=["bench_transfer.py"])
    result = outcome.result
    best = result.best
    row = {"reward": best.reward, "accuracy": best.accuracy, "evaluations": result.episodes,
           "macs_ratio": best.metrics.get("macs_ratio", math.nan),
           "best_so_far": result.best_so_far().tolist(),
           "seconds": time.perf_counter() - start}  # fmt: skip
    if exported(spec, args):
        from prunegym.experiments.export import ExportOptions, export_run

        opts = ExportOptions(epochs=args.export_epochs, train_samples=args.export_samples,
                             latency_repeats=3, progress=False)  # fmt: skip
        pruned = export_run(run_dir, opts)["pruned"]
        row["test_accuracy"] = pruned["top1"]
        row["test_accuracy_before_fine_tune"] = pruned["top1_before_fine_tune"]
        row["export_seconds"] = time.perf_counter() - start - row["seconds"]
    write_json(run_dir / ROW_FILE, row)
    return row


def with_test_before_fine_tune(row: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A read-back row with its test accuracy before the fine-tune, from the export's
    ``metrics.json`` when the row was written before it recorded that figure."""
    metrics = run_dir / "export" / "metrics.json"
    if "test_accuracy" in row and "test_accuracy_before_fine_tune" not in row and metrics.is_file():
        row["test_accuracy_before_fine_tune"] = json.loads(metrics.read_text())["pruned"][
            "top1_before_fine_tune"]  # fmt: skip
    return row


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} +- {std:.4f}"


def evaluations_to_reach(curves: list[list[float]], goal: float) -> str:
    """Mean evaluations a method's best-so-far needs to reach ``goal`` (``>N``: never)."""
    hits = [next((i + 1 for i, r in enumerate(c) if r >= goal), None) for c in curves]
    if any(h is None for h in hits):
        return f">{max(len(c) for c in curves)}"
    return f"{statistics.mean([h for h in hits if h is not None]):.1f}"


def table(results: dict[str, list[dict[str, Any]]], kmax: int) -> str:
    """The Markdown table of one target: a row per method and K, mean +- std over seeds."""
    scratch = results.get(f"ddpg-scratch@{kmax}", [])
    goal = statistics.mean([r["reward"] for r in scratch]) if scratch else math.nan
    lines = ["| method | evaluations | proxy accuracy | test accuracy before fine-tune | "
             f"test accuracy | reward | MACs ratio | evaluations to DDPG@{kmax}'s reward |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for key, rows in results.items():
        method, k = key.rsplit("@", 1)
        reach = "-" if math.isnan(goal) else evaluations_to_reach(
            [r["best_so_far"] for r in rows], goal)  # fmt: skip
        lines.append(
            f"| {method} | {k} | {_mean_std([r['accuracy'] for r in rows])} | "
            f"{_mean_std([r.get('test_accuracy_before_fine_tune', math.nan) for r in rows])} | "
            f"{_mean_std([r.get('test_accuracy', math.nan) for r in rows])} | "
            f"{_mean_std([r['reward'] for r in rows])} | "
            f"{_mean_std([r['macs_ratio'] for r in rows])} | {reach} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sources = {"source": args.source}
    if args.generalist is not None:
        sources["generalist"] = args.generalist
    summary: dict[str, Any] = {"source": str(args.source), "seeds": args.seeds, "k": args.k,
                               "targets": {}}  # fmt: skip
    for target in args.targets:
        results: dict[str, list[dict[str, Any]]] = {}
        for spec in plan(args, sources):
            key = f"{spec['method']}@{spec['k']}"
            for seed in args.seeds:
                run_dir = args.out / target.stem / f"{key.replace('@', '-k')}-seed{seed}"
                run_dir = Path(str(run_dir).replace(" ", "_").replace("(", "").replace(")", ""))
                row = run_one(target, seed, spec, args, run_dir)
                results.setdefault(key, []).append(row)
                print(f"{target.stem} {key} seed {seed}: reward {row['reward']:.4f}, "
                      f"accuracy {row['accuracy']:.4f}", flush=True)  # fmt: skip
        summary["targets"][str(target)] = results
        print(f"\n### {target.stem}\n\n{table(results, max(args.k))}\n", flush=True)
        (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
