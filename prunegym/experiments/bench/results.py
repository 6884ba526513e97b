"""``results.jsonl``: one JSON line per finished cell, built only from its run directory.

Accuracies are fractions (0.9731), ratios pruned / dense, times in seconds.
``evaluated`` counts every episode in history.csv (cache hits included; ``cache_hits``
says how many, ``null`` while the history has no ``cache_hit`` column).
``proxy_accuracy`` is the selected policy's accuracy on the search's reward slice,
``heldout_proxy_accuracy`` its score on a second held-out slice (``null`` until the
search records one as ``heldout_accuracy`` in best_policy.json's meta).
``achieved_ratio`` is the physically pruned model's cost in the budget's unit.
``search_seconds`` and ``finetune_seconds`` come from the run directory (all sessions);
``wall_seconds`` is the wall time of the cell's search and export in the bench
invocation that finished it (in its Ray task with ``bench.workers`` > 1; for a cell
resumed after a cut, only the part after the cut; ``null`` for a row rebuilt from a run
directory finished earlier). ``finetune_samples`` is how many training samples the
fine-tune read (``bench.finetune_samples``, or the whole train split).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prunegym.experiments.bench.cells import Cell, read_json
from prunegym.experiments.rundir import read_history
from prunegym.utils.files import atomic_write_text

RESULTS_FILE = "results.jsonl"
#: history.csv column marking an episode answered from the evaluator's cache, if recorded.
CACHE_HIT_COLUMN = "cache_hit"


def result_row(
    cell: Cell, out: Path, metrics: Mapping[str, Any], wall_seconds: float | None
) -> dict[str, Any]:
    """The results line of a searched and exported cell (``metrics``: its export's)."""
    run_dir = cell.run_dir(out)
    history = read_history(run_dir)
    meta = read_json(run_dir / "best_policy.json").get("meta") or {}
    dense, pruned = metrics["dense"], metrics["pruned"]
    return {
        "cell": cell.key,
        "workload": cell.workload.name,
        "workload_config": cell.workload.path,
        "target": cell.target,
        "ratio": cell.ratio,
        "importance": cell.importance,
        "searcher": cell.searcher,
        "seed": cell.seed,
        "episodes": cell.config.search.episodes,
        "evaluated": len(history),
        "cache_hits": cache_hits(history),
        "best_reward": meta.get("reward"),
        "proxy_accuracy": meta.get("accuracy"),
        # the selected policy's score on a second held-out slice, once searches record one
        "heldout_proxy_accuracy": meta.get("heldout_accuracy"),
        "achieved_ratio": achieved_ratio(metrics, cell.target),
        "macs_ratio": pruned["macs"] / dense["macs"],
        "params_ratio": pruned["params"] / dense["params"],
        "dense_test_top1": dense["top1"],
        "test_top1_before_finetune": pruned["top1_before_fine_tune"],
        "test_top1_after_finetune": pruned["top1"],
        "finetune_epochs": metrics["fine_tune"]["epochs"],
        # training samples the fine-tune read (None: an export from before subsets)
        "finetune_samples": metrics["fine_tune"].get("train_samples"),
        "search_seconds": sum(float(r.get("seconds") or 0.0) for r in history),
        "finetune_seconds": metrics["fine_tune"]["seconds"],
        "wall_seconds": wall_seconds,
        "run_dir": str(Path("cells") / cell.key),
    }


def cache_hits(history: list[dict[str, str]]) -> int | None:
    """Episodes the evaluator answered from its cache (counted in ``evaluated`` too);
    ``None`` when the history does not record it."""
    if not history or CACHE_HIT_COLUMN not in history[0]:
        return None
    return sum(str(r.get(CACHE_HIT_COLUMN)).strip().lower() in ("1", "true", "1.0")
               for r in history)  # fmt: skip


def achieved_ratio(metrics: Mapping[str, Any], target: str) -> float:
    """The physically pruned model's cost over the dense one's, in the budget's unit."""
    dense, pruned = metrics["dense"], metrics["pruned"]
    if target == "latency":
        return pruned["latency_ms"]["1"]["median_ms"] / dense["latency_ms"]["1"]["median_ms"]
    return pruned[target] / dense[target]


def read_results(out: Path) -> dict[str, dict[str, Any]]:
    """The rows already in ``out/results.jsonl`` by cell key (missing file: none)."""
    path = out / RESULTS_FILE
    if not path.is_file():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["cell"]] = row
    return rows


def write_results(out: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Rewrite ``out/results.jsonl`` atomically with ``rows`` in order."""
    text = "".join(json.dumps(dict(r), sort_keys=False) + "\n" for r in rows)
    return atomic_write_text(out / RESULTS_FILE, text)
