"""A schedule's result and report: the whole path, step by step, from measured figures.

``SCHEDULE_DIR/export`` holds the last step's model (``model.pt``), ``metrics.json``
(the original network, every step's budget, cost and test accuracy before and after
fine-tuning), ``report.md`` and ``trajectory.png`` (test accuracy against the cost
ratio of the original network, step by step). ``prunegym report SCHEDULE_DIR``
re-renders the report and the plot from ``metrics.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunegym.experiments.rundir import EXPORT_DIR, METRICS_FILE
from prunegym.utils.files import atomic_write_bytes, atomic_write_text, write_json

KIND = "schedule"  # metrics["kind"] of a schedule's export


def write_schedule_export(out: Path, state: dict[str, Any], command: Sequence[str],
                          export_command: Sequence[str] = ()) -> dict:  # fmt: skip
    """The schedule's ``export/``: the last step's model, metrics, report and plot;
    ``command`` ran the schedule, ``export_command`` (if any) exported it again."""
    steps = state["steps"]
    last = steps[-1]
    last_metrics = json.loads((out / last["dir"] / EXPORT_DIR / METRICS_FILE).read_text())
    metrics = {
        "kind": KIND,
        "schedule_dir": str(out),
        "command": list(command),
        "export_command": list(export_command),
        "model": last_metrics["model"],
        "dataset": last_metrics["dataset"],
        "test_samples": last_metrics["test_samples"],
        "target": state["target"],
        "targets": state["targets"],
        "floor_ratio": state["floor_ratio"],
        "restart_agent": state["restart_agent"],
        "step_warmup_episodes": state.get("step_warmup_episodes"),
        "dense": state["dense"],
        "steps": steps,
        "result": {"step": last["dir"], "model": f"{EXPORT_DIR}/model.pt"},
    }
    export = out / EXPORT_DIR
    source = out / last["model"]
    atomic_write_bytes(export / "model.pt", lambda fh: fh.write(source.read_bytes()))
    write_json(export / METRICS_FILE, metrics)
    write_schedule_report(export, metrics)
    return metrics


def write_schedule_report(export: Path, metrics: dict[str, Any]) -> None:
    """``report.md`` and ``trajectory.png`` in ``export`` from a schedule's metrics."""
    plot_trajectory(metrics, export / "trajectory.png")
    atomic_write_text(export / "report.md", render_schedule_report(metrics))


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def _count(x: float) -> str:
    return f"{x / 1e6:.3f} M" if x >= 1e5 else f"{x:,.0f}"


def trajectory_rows(m: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per point of the path: the original network, then every step."""
    d = m["dense"]
    rows: list[tuple[str, ...]] = [
        ("dense", "1", "", "", "", _count(d["macs"]), "1.000", "1.000", "", _pct(d["top1"]))
    ]
    for s in m["steps"]:
        rows.append((str(s["index"]), f"{s['target_ratio']:g}", f"{s['step_ratio']:.4g}",
                     s["agent"], str(s["episodes"]), _count(s["macs"]),
                     f"{s['macs_ratio']:.3f}", f"{s['params_ratio']:.3f}",
                     _pct(s["top1_before_fine_tune"]), _pct(s["top1"])))  # fmt: skip
    return rows


HEADER = ("step", "budget (of dense)", "ratio of current", "searcher", "episodes", "MACs",
          "MACs ratio", "params ratio", "top-1 before FT", "top-1 after FT")  # fmt: skip


def _agent_text(m: dict[str, Any]) -> str:
    agents = [s["agent"] for s in m["steps"]]
    if "transfer" in agents[1:]:
        warmup = m.get("step_warmup_episodes")  # PPO has no warm-up
        shown = warmup is not None and agents[0] != "ppo"
        return ("the RL agent carried over from step to step (searcher `transfer`"
                + (f", {warmup} warm-up episode(s) at each later step" if shown else "")
                + ")")  # fmt: skip
    if m["restart_agent"]:
        return "a fresh agent at every step (`run.restart_agent: true`)"
    return f"`{agents[0]}` at every step"


def render_schedule_report(m: dict[str, Any]) -> str:
    """The schedule's report in Markdown."""
    steps, d, kind = m["steps"], m["dense"], m["target"]
    last = steps[-1]
    out = [
        f"# prunegym schedule report: {m['model']['name']} on {m['dataset']}",
        "",
        f"Iterative pruning in {len(steps)} step(s) to **{kind} <= {m['targets'][-1]:g}** of "
        f"the original dense model. Each step searched the per-unit policy for its budget "
        f"(a ratio of the ORIGINAL dense {kind}) on the network the previous step left, "
        "applied it for real, fine-tuned and evaluated it on the test split "
        f"({m['test_samples']} samples the searches never saw); {_agent_text(m)}. "
        f"Smallest {kind} ratio one search could reach from the original network: "
        f"{m['floor_ratio']:.4g}.",
        "",
        "## Trajectory",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|" + "---:|" * (len(HEADER) - 1),
        *["| " + " | ".join(row) + " |" for row in trajectory_rows(m)],
        "",
        "![trajectory](trajectory.png)",
        "",
        "Every step is a complete run directory with its own report: "
        + ", ".join(f"[{s['dir']}](../{s['dir']}/export/report.md)" for s in steps) + ".",
        "",
        "## Result",
        "",
        f"`{m['result']['model']}` (the model of {last['dir']}, `prunegym.load_pruned`): test "
        f"top-1 {_pct(last['top1'])} (dense {_pct(d['top1'])}), {_count(last['macs'])} MACs "
        f"({last['macs_ratio']:.3f} of dense), {_count(last['params'])} params "
        f"({last['params_ratio']:.3f}).",
        "",
        f"Cost of the path: {sum(s['episodes'] for s in steps)} evaluated candidates, "
        f"{sum(s['search_seconds'] for s in steps):.1f} s of search, "
        f"{sum(s['fine_tune_epochs'] for s in steps)} fine-tuning epoch(s) in "
        f"{sum(s['fine_tune_seconds'] for s in steps):.1f} s.",
        "",
    ]  # fmt: skip
    commands = [" ".join(c) for c in (m.get("command"), m.get("export_command")) if c]
    if commands:
        out += ["## Reproduce", "", "```", *commands, "```", ""]
    return "\n".join(out)


def plot_trajectory(m: dict[str, Any], path: Path) -> Path:
    """Test top-1 against the cost ratio of the original network: the dense model, then
    every step before (hollow) and after fine-tuning (filled, joined), budgets dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = m["target"]
    steps = m["steps"]
    x = [1.0, *[s[f"{kind}_ratio"] for s in steps]]
    after = [m["dense"]["top1"], *[s["top1"] for s in steps]]
    before = [s["top1_before_fine_tune"] for s in steps]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(x, after, "o-", lw=2, label="after fine-tuning")
    ax.plot(x[1:], before, "o", mfc="none", label="before fine-tuning")
    for i, (xi, yi) in enumerate(zip(x, after, strict=True)):
        ax.annotate("dense" if i == 0 else str(i), (xi, yi), textcoords="offset points",
                    xytext=(4, 6), fontsize=8)  # fmt: skip
    for t in m["targets"]:
        ax.axvline(t, color="red", ls="--", lw=0.8, alpha=0.6)
    ax.invert_xaxis()
    ax.set_xlabel(f"{kind} ratio of the original dense model (budgets dashed)")
    ax.set_ylabel("test top-1")
    ax.set_title("pruning schedule: accuracy along the path")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, format="png", dpi=120))
    plt.close(fig)
    return path


def schedule_table(m: dict[str, Any]) -> str:
    """The trajectory as aligned plain text (what ``prunegym run`` prints)."""
    rows = [HEADER, *trajectory_rows(m)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def print_schedule_summary(m: dict[str, Any], out: Path) -> None:
    """The trajectory and where everything is."""
    print(schedule_table(m))
    export = out / EXPORT_DIR
    print(f"\nschedule directory: {out}")
    print(f"report:             {export / 'report.md'}")
    print(f"trajectory:         {export / 'trajectory.png'}")
    print(f"model:              {export / 'model.pt'} (prunegym.load_pruned)")
