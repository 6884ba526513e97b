"""``report.md`` and the before/after table, rendered from measured figures only.

``prunegym report RUN_DIR`` rebuilds the report and the plots from what the export
saved (``export/metrics.json``) and the search history, without re-measuring anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prunegym.experiments.cli import Command
from prunegym.experiments.config import ConfigError


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _n(x: float) -> str:
    return f"{x / 1e6:.3f} M" if x >= 1e5 else f"{x:,.0f}"


def _rows(m: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    d, p = m["dense"], m["pruned"]
    rows = [
        *[(f"test {k.replace('top', 'top-')}", _pct(d[k]), _pct(p[k]),
           f"{100 * (p[k] - d[k]):+.2f} pt") for k in ("top1", "top5")],
        ("MACs", _n(d["macs"]), _n(p["macs"]), f"{d['macs'] / p['macs']:.2f}x fewer"),
        ("params", _n(d["params"]), _n(p["params"]), f"{d['params'] / p['params']:.2f}x fewer"),
        ("file size", f"{d['file_bytes'] / 1024:.1f} KiB", f"{p['file_bytes'] / 1024:.1f} KiB",
         f"{d['file_bytes'] / p['file_bytes']:.2f}x smaller"),
    ]  # fmt: skip
    for batch, dl in d["latency_ms"].items():
        pl = p["latency_ms"][batch]
        speedup = dl["median_ms"] / pl["median_ms"]
        rows.append((f"latency, batch {batch} (ms)", f"{dl['median_ms']:.3f}",
                     f"{pl['median_ms']:.3f}", f"{speedup:.2f}x faster"))  # fmt: skip
    return rows


def summary_table(m: dict[str, Any]) -> str:
    """The before/after table as aligned plain text (what ``prunegym demo`` prints)."""
    header = ("", "dense", "pruned", "change")
    rows = [header, *_rows(m)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]  # fmt: skip
    lines.insert(1, "-" * len(lines[0]))
    budget = m["budget"]
    lines.append(f"budget: {budget['target']} <= {budget['ratio']:g} of dense; latency on "
                 f"{m['latency_device']} with {m['latency_threads']} thread(s)")  # fmt: skip
    return "\n".join(lines)


def render_report(m: dict[str, Any], has_history: bool = True) -> str:
    """The run's report in Markdown."""
    p, s, ft = m["pruned"], m["search"], m["fine_tune"]
    spec = m["model"]
    out = [
        f"# prunegym report: {spec['name']} on {m['dataset']}",
        "",
        f"Budget: **{m['budget']['target']} <= {m['budget']['ratio']:g}** of the dense model. "
        f"Search: **{s['agent']}**, {s['episodes']} episodes. Test split: "
        f"{m['test_samples']} samples (never seen by the search).",
        "",
        "## Dense vs pruned",
        "",
        "| | dense | pruned | change |",
        "|---|---:|---:|---:|",
        *[f"| {a} | {b} | {c} | {e} |" for a, b, c, e in _rows(m)],
        "",
        f"Pruned top-1 before fine-tuning: {_pct(p['top1_before_fine_tune'])}; after "
        f"{ft['epochs']} epoch(s) of fine-tuning"
        f"{' with distillation from the dense model' if ft['distill'] else ''} "
        f"({ft['seconds']:.1f} s on {ft['device']}): {_pct(p['top1'])}.",
        f"Latency: median of {m['options']['latency_repeats']} timed runs after warm-up, "
        f"{m['latency_device']}, {m['latency_threads']} thread(s). "
        f"ONNX export max |onnxruntime - torch| = {m['onnx']['max_abs_diff']:.2e}.",
        "",
        "## Policy",
        "",
        f"Granularity {m['policy']['granularity']}, importance {m['policy']['importance']}, "
        f"kept channels rounded to multiples of {m['policy']['round_to']}.",
        "",
        "| # | unit | kept / original | sparsity asked | removed |",
        "|---:|---|---:|---:|---:|",
        *[f"| {i} | `{u['name']}` | {u['kept']} / {u['channels']} | {u['sparsity']:.3f} | "
          f"{1 - u['kept'] / u['channels']:.3f} |" for i, u in enumerate(m["policy"]["units"])],
        "",
        "![per-unit sparsity](policy.png)",
        "",
        "## Search cost",
        "",
        f"{s['episodes']} episodes in {s['seconds']:.1f} s "
        f"({s['seconds_per_episode']:.3f} s per episode); best reward "
        f"{_fmt(s['best_reward'])} at episode {s['best_episode']}.",
        "",
    ]  # fmt: skip
    if has_history:
        out += ["![reward](reward.png)", "", "![candidates](candidates.png)", ""]
    out += ["## Reproduce", "", "```", m["reproduce"], "```", ""]
    if m.get("command"):
        out += [f"This export was made by: `{' '.join(m['command'])}`", ""]
    return "\n".join(out)


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def rebuild_report(run_dir: Path) -> Path:
    """Re-render report.md and the plots of ``run_dir/export`` from the saved figures."""
    from prunegym.experiments.export import EXPORT_DIR, METRICS_FILE, read_history
    from prunegym.experiments.export import write_report_files as write

    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    metrics_path = run_dir / EXPORT_DIR / METRICS_FILE
    if not metrics_path.is_file():
        raise ConfigError(f"{run_dir} has no export yet ({metrics_path}): run prunegym export")
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{metrics_path} is not valid JSON: {exc}") from exc
    write(run_dir / EXPORT_DIR, metrics, read_history(run_dir))
    return run_dir / EXPORT_DIR / "report.md"


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory with an export")


def _run(args: argparse.Namespace) -> int:
    path = rebuild_report(args.run_dir)
    print(f"report: {path}", file=sys.stdout)
    return 0


REPORT = Command(
    name="report",
    help="rebuild a run's report.md and plots from its saved figures",
    configure=_configure,
    run=_run,
)
