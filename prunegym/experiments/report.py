"""``report.md``, the plots and the before/after table, rendered from measured figures only.

``prunegym report RUN_DIR`` rebuilds the report and the plots from what the export
saved (``export/metrics.json``) and the search history, without re-measuring anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prunegym.experiments.commands import Command
from prunegym.experiments.config import ConfigError
from prunegym.experiments.rundir import EXPORT_DIR, METRICS_FILE, read_history
from prunegym.experiments.runlock import run_dir_lock
from prunegym.experiments.timing import speed_change
from prunegym.utils.files import atomic_write_text


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _n(x: float) -> str:
    return f"{x / 1e6:.3f} M" if x >= 1e5 else f"{x:,.0f}"


def _latency_rows(m: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for batch, dl in m["dense"]["latency_ms"].items():
        pl = m["pruned"]["latency_ms"][batch]
        flag = " (noisy)" if dl.get("noisy") or pl.get("noisy") else ""
        change = speed_change(dl["median_ms"], pl["median_ms"])
        rows.append((f"latency, batch {batch} (ms){flag}", f"{dl['median_ms']:.3f}",
                     f"{pl['median_ms']:.3f}", change))  # fmt: skip
    return rows


def _rows(m: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    d, p = m["dense"], m["pruned"]
    return [
        *[(f"test {k.replace('top', 'top-')}", _pct(d[k]), _pct(p[k]),
           f"{100 * (p[k] - d[k]):+.2f} pt") for k in ("top1", "top5")],
        ("MACs", _n(d["macs"]), _n(p["macs"]), f"{d['macs'] / p['macs']:.2f}x fewer"),
        ("params", _n(d["params"]), _n(p["params"]), f"{d['params'] / p['params']:.2f}x fewer"),
        ("file size", f"{d['file_bytes'] / 1024:.1f} KiB", f"{p['file_bytes'] / 1024:.1f} KiB",
         f"{d['file_bytes'] / p['file_bytes']:.2f}x smaller"),
        *_latency_rows(m),
    ]  # fmt: skip


def noisy_latency(m: dict[str, Any]) -> bool:
    """Whether any latency figure was flagged as measured under load."""
    return any(lat.get("noisy") for side in ("dense", "pruned")
               for lat in m[side]["latency_ms"].values())  # fmt: skip


def _noise_note(m: dict[str, Any]) -> str:
    spreads = [lat.get("spread", 0.0) for side in ("dense", "pruned")
               for lat in m[side]["latency_ms"].values()]  # fmt: skip
    return (f"warning: latency rounds differ by up to {100 * max(spreads):.0f}%: the machine "
            "was busy while timing; time again on an idle machine")  # fmt: skip


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
    if noisy_latency(m):
        lines.append(_noise_note(m))
    return "\n".join(lines)


def _before_fine_tune_text(m: dict[str, Any]) -> list[str]:
    p, s, ft = m["pruned"], m["search"], m["fine_tune"]
    before = p.get("before_fine_tune")
    if before is None:  # an export made before recalibration was reported
        return [f"Pruned test top-1 before fine-tuning: {_pct(p['top1_before_fine_tune'])}."]
    if before["recalibrated"]:
        how = (
            f"pruned, batch-norm recalibrated as the search did ({before['bn_batches']} "
            f"batches of {before['bn_batch_size']} training images), before fine-tuning"
        )
    else:
        how = "pruned, not recalibrated (the search did not recalibrate), before fine-tuning"
    rv, test = before["reward_val"], before["test"]
    proxy = s.get("proxy_accuracy")
    proxy_text = (
        ""
        if proxy is None
        else (f" (the search scored this policy {_pct(proxy)} on {s['proxy_samples']} of them)")
    )
    tuned = (f"after {ft['epochs']} epoch(s) of fine-tuning"
             f"{' with distillation from the dense model' if ft['distill'] else ''} "
             f"({ft['seconds']:.1f} s on {ft['device']})")  # fmt: skip
    return [
        "| pruned model | reward_val top-1 | test top-1 |",
        "|---|---:|---:|",
        f"| {how} | {_pct(rv['top1'])} | {_pct(test['top1'])} |",
        f"| {tuned} | | {_pct(p['top1'])} |",
        "",
        f"reward_val: {rv['samples']} training images held out for the search's reward"
        f"{proxy_text}; test: {test['samples']} images the search never saw.",
    ]  # fmt: skip


def _latency_text(m: dict[str, Any]) -> str:
    rounds = len(next(iter(m["dense"]["latency_ms"].values())).get("round_medians_ms", [0]))
    text = (
        f"Latency: median over {rounds} alternating round(s) of "
        f"{m['options']['latency_repeats']} timed runs after warm-up, "
        f"{m['latency_device']}, {m['latency_threads']} thread(s)."
    )
    if noisy_latency(m):
        text += " **" + _noise_note(m).replace("warning: ", "Warning: ") + ".**"
    onnx = m.get("onnx") or {}
    if "max_abs_diff" in onnx:
        text += f" ONNX export max |onnxruntime - torch| = {onnx['max_abs_diff']:.2e}."
    elif "skipped" in onnx:
        text += f" ONNX export skipped: {onnx['skipped']}."
    return text


def render_report(m: dict[str, Any], has_history: bool = True) -> str:
    """The run's report in Markdown."""
    s = m["search"]
    spec = m["model"]
    out = [
        f"# prunegym report: {spec['name']} on {m['dataset']}",
        "",
        f"Budget: **{m['budget']['target']} <= {m['budget']['ratio']:g}** of the dense model. "
        f"Search: **{s['agent']}**, {s['episodes']} episodes. Test split: "
        f"{m['test_samples']} samples (never seen by the search).",
        "",
        "## Dense vs pruned (fine-tuned)",
        "",
        "| | dense | pruned | change |",
        "|---|---:|---:|---:|",
        *[f"| {a} | {b} | {c} | {e} |" for a, b, c, e in _rows(m)],
        "",
        "## Before and after fine-tuning",
        "",
        *_before_fine_tune_text(m),
        "",
        _latency_text(m),
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


def write_report_files(out: Path, metrics: dict[str, Any], history: list[dict[str, str]]) -> None:
    """report.md and the PNG plots in ``out`` (from measured metrics and history only);
    a schedule's (``metrics["kind"] == "schedule"``) report shows its whole path."""
    from prunegym.experiments import plots

    if metrics.get("kind") == "schedule":
        from prunegym.experiments.schedule_report import write_schedule_report

        write_schedule_report(out, metrics)
        return

    units = [u["name"] for u in metrics["policy"]["units"]]
    if history:
        plots.plot_reward_curve(history, out / "reward.png",
                                title=f"{metrics['search']['agent']} search")  # fmt: skip
        target = metrics["budget"]["target"]
        metric = f"{target}_ratio" if f"{target}_ratio" in history[0] else "macs_ratio"
        plots.plot_candidates(history, metrics["budget"]["ratio"] if metric.startswith(target)
                              else None, out / "candidates.png", metric=metric)  # fmt: skip
    real = [1 - u["kept"] / u["channels"] for u in metrics["policy"]["units"]]
    uniform = metrics.get("uniform")
    base = None
    if uniform is not None:
        base = [1 - uniform["kept"][u["name"]] / u["channels"] for u in metrics["policy"]["units"]]
    plots.plot_policy(units, real, base, out / "policy.png")
    atomic_write_text(out / "report.md", render_report(metrics, has_history=bool(history)))


def print_summary(metrics: dict[str, Any], run_dir: Path) -> None:
    """The before/after table and where everything is."""
    print(summary_table(metrics))
    out = run_dir / EXPORT_DIR
    onnx = f", {out / 'model.onnx'}" if "max_abs_diff" in (metrics.get("onnx") or {}) else ""
    print(f"\nrun directory: {run_dir}")
    print(f"report:        {out / 'report.md'}")
    print(f"plots:         {out / 'reward.png'}, {out / 'policy.png'}, {out / 'candidates.png'}")
    print(f"model:         {out / 'model.pt'} (prunegym.load_pruned){onnx}")
    if "skipped" in (metrics.get("onnx") or {}):
        print(f"ONNX:          skipped, {metrics['onnx']['skipped']}")
    print(f"TensorBoard:   tensorboard --logdir {run_dir / 'tb'}")


def rebuild_report(run_dir: Path) -> Path:
    """Re-render report.md and the plots of ``run_dir/export`` from the saved figures."""
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    metrics_path = run_dir / EXPORT_DIR / METRICS_FILE
    if not metrics_path.is_file():
        raise ConfigError(f"{run_dir} has no export yet ({metrics_path}): run prunegym export")
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{metrics_path} is not valid JSON: {exc}") from exc
    with run_dir_lock(run_dir):
        write_report_files(run_dir / EXPORT_DIR, metrics, read_history(run_dir))
    return run_dir / EXPORT_DIR / "report.md"


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory with an export")


def _run(args: argparse.Namespace) -> int:
    path = rebuild_report(args.run_dir)
    print(f"report: {path}", file=sys.stdout)
    return 0


COMMAND = Command(
    name="report",
    help="rebuild a run's report.md and plots from its saved figures",
    configure=_configure,
    run=_run,
)
