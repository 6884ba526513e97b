"""Which classification models prune: a sweep over torchvision (and timm, if installed).

Usage:
    python benchmarks/coverage.py [--out docs/coverage.md] [--models tv:resnet18 ...]
                                  [--no-timm] [--timeout 900]
    python benchmarks/coverage.py --render   # the Markdown again, from the raw results

Every model is built with random weights and 10 classes, fed a seeded input of 64 px
(224 px for transformers, 96 px for Inception v3), and given a LayerTable; then a
uniform 30 % policy (l1 importance, round to 8) is applied for real and checked:
the masked network must equal the physically pruned one, and the table's MACs must
equal a count on the pruned model. Each model runs in its own process (one at a
time, with a timeout), so one crash or hang cannot stop the sweep. The result is a
Markdown table: family, units, frozen layers and why, the smallest MACs ratio the
units reach (every unit at the environment's default max_sparsity 0.8), status and
seconds. The largest variants are skipped for time and memory (listed in the file).
The raw results (one JSON object per model) go next to it (``coverage.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from prunegym.utils.files import atomic_write_text

SPARSITY, ROUND_TO, FLOOR_SPARSITY = 0.3, 8, 0.8
TRANSFORMERS = ("vit_", "swin_", "maxvit", "deit", "mobilevit")
SKIPPED = {  # the largest variants: minutes each and several GB for the copies
    "tv:vit_h_14": "632 M params",
    "tv:regnet_y_128gf": "645 M params",
    "tv:vit_l_16": "304 M params",
    "tv:vit_l_32": "306 M params",
    "tv:convnext_large": "198 M params",
    "tv:regnet_y_32gf": "145 M params",
    "tv:regnet_x_32gf": "108 M params",
}
TIMM_MODELS = [
    "resnet18", "resnet26d", "efficientnet_b0", "mobilenetv3_small_100", "ghostnet_100",
    "rexnet_100", "regnetx_002", "convnext_atto", "dla34", "vit_tiny_patch16_224",
    "deit_tiny_patch16_224", "mobilevit_xxs",
]  # fmt: skip


def torchvision_models() -> list[str]:
    import torchvision

    return [f"tv:{n}" for n in sorted(torchvision.models.list_models(module=torchvision.models))]


def side_for(name: str) -> int:
    short = name.split(":", 1)[1]
    if short.startswith(TRANSFORMERS):
        return 224
    return 96 if short == "inception_v3" else 64


def build(name: str) -> Any:
    source, short = name.split(":", 1)
    if source == "timm":
        import timm

        return timm.create_model(short, pretrained=False, num_classes=10)
    from prunegym.experiments.models import build_model

    return build_model(name, num_classes=10)


def check_one(name: str) -> dict[str, Any]:
    """Table, 30 % policy, masked vs physical and MACs for one model (runs in a child)."""
    import torch

    from prunegym.pruners import ChannelPruner, LayerTable, PruningError, PruningPolicy, count_cost

    torch.manual_seed(0)
    torch.set_num_threads(1)
    side = side_for(name)
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(1, 3, side, side, generator=gen)
    batch = torch.randn(2, 3, side, side, generator=gen)
    result: dict[str, Any] = {"model": name, "side": side}
    start = time.perf_counter()
    model = build(name).eval()
    try:
        table = LayerTable.from_model(model, example)
    except PruningError as exc:
        result.update(status="refused", reason=str(exc), seconds=time.perf_counter() - start)
        return result
    result.update(units=len(table), layers=len(table.layers),
                  frozen=frozen_reasons(table.frozen, [n for n, _ in model.named_modules()]),
                  table_seconds=time.perf_counter() - start)  # fmt: skip
    floor = table.cost(PruningPolicy.uniform(table, FLOOR_SPARSITY, round_to=ROUND_TO))
    result["floor_ratio"] = floor.macs / table.total_macs
    policy = PruningPolicy.uniform(table, SPARSITY, round_to=ROUND_TO)
    try:
        pruner = ChannelPruner(model, table, importance="l1", round_to=ROUND_TO)
        small = pruner.apply(policy).eval()
        with torch.no_grad():
            physical = small(batch)
            with pruner.masked(policy):
                masked = model(batch)
        diff = float((physical - masked).abs().max())
        scale = float(masked.abs().max()) + 1e-6
        expected, counted = table.cost(policy), count_cost(small, example)
    except Exception as exc:  # a sweep reports every failure, whatever its type
        result.update(status="FAIL", reason=f"{type(exc).__name__}: {exc}")
    else:
        result.update(max_abs_diff=diff, macs_ratio=expected.macs / table.total_macs)
        exact = expected == counted and diff <= 1e-4 * max(scale, 1.0)
        result["status"] = "pass" if exact else "FAIL"
        if not exact:
            result["reason"] = f"diff {diff:.3g}, table {expected}, counted {counted}"
    result["seconds"] = time.perf_counter() - start
    return result


def run_child(name: str, timeout: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", name]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"model": name, "status": "FAIL", "reason": f"no answer in {timeout} s",
                "seconds": time.perf_counter() - start}  # fmt: skip
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": name, "status": "FAIL", "reason": f"exit {done.returncode}: {tail}",
                "seconds": time.perf_counter() - start}  # fmt: skip
    return json.loads(lines[-1])


def frozen_reasons(frozen: dict[str, str], module_names: list[str]) -> dict[str, int]:
    """How many layers are frozen for each reason, module names taken out of the reasons."""
    names = sorted((n for n in module_names if n), key=len, reverse=True)
    pattern = re.compile("|".join(rf"(?<![\w.]){re.escape(n)}(?![\w.])" for n in names))

    def generic(why: str) -> str:
        why = pattern.sub("X", why) if names else why
        return re.sub(r"\(\d+(?:, \d+)*\)", "(shape)", why)

    return dict(Counter(generic(why) for why in frozen.values()).most_common())


def frozen_summary(reasons: dict[str, int]) -> str:
    return "; ".join(f"{n} x {why}" for why, n in reasons.items()) or "-"


def family(name: str) -> str:
    short = name.split(":", 1)[1]
    if short.startswith("wide_resnet"):
        return "wide_resnet"
    match = re.match(r"[a-z]+", short)
    return match.group(0).removesuffix("v") if match else short


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| family | model | px | units | frozen layers and why | MACs at 30 % | MACs floor "
            "| status | s |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    lines = [head]
    for r in rows:
        status = r["status"] if r["status"] == "pass" else f"{r['status']}: {r.get('reason', '')}"
        floor = f"{r['floor_ratio']:.3f}" if "floor_ratio" in r else "-"
        at_policy = f"{r['macs_ratio']:.3f}" if "macs_ratio" in r else "-"
        frozen = frozen_summary(r.get("frozen", {}))
        lines.append(f"| {family(r['model'])} | {r['model']} | {r.get('side', '')} | "
                     f"{r.get('units', '-')} | {frozen} | {at_policy} | {floor} | "
                     f"{status.replace('|', '/')} | {r['seconds']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def group(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by source: torchvision, timm."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        title = "timm" if row["model"].startswith("timm:") else "torchvision"
        sections.setdefault(title, []).append(row)
    return sections


def summary(rows: list[dict[str, Any]]) -> str:
    counts = Counter(r["status"] for r in rows)
    parts = [f"{counts.get('pass', 0)} of {len(rows)} pass"]
    parts += [f"{counts[k]} {k}" for k in ("refused", "FAIL") if counts.get(k)]
    return ", ".join(parts)


def write_report(path: Path, sections: dict[str, list[dict[str, Any]]], command: str) -> None:
    import torch
    import torch_pruning
    import torchvision

    lines = [
        "# Coverage: which classification models prune",
        "",
        f"Generated by `{command}` on {date.today()} ({platform.machine()}, "
        f"{os.cpu_count()} CPUs, one torch thread per model; torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, torch-pruning {torch_pruning.__version__}).",
        "",
        f"Random weights, 10 classes, input 64 px (224 px for transformers, 96 px for "
        f"Inception v3). A uniform {SPARSITY:.0%} policy (l1, round to {ROUND_TO}) is "
        f"applied for real: **pass** means the masked network equals the physically pruned "
        f"one and the table's MACs equal a count on the pruned model. *MACs at 30 %*: the "
        f"pruned model's MACs as a fraction of the dense model's. *MACs floor*: the "
        f"MACs ratio with every unit at sparsity {FLOOR_SPARSITY} (the environment's default "
        f"maximum). *s*: seconds for build, table, apply and checks on a shared machine.",
        "",
    ]
    for title, rows in sections.items():
        lines += [f"## {title}", "", f"{summary(rows)}.", "", markdown(rows), ""]
    if SKIPPED:
        skipped = ", ".join(f"{n[3:]} ({why})" for n, why in SKIPPED.items())
        lines += [f"Skipped for time and memory: {skipped}.", ""]
    atomic_write_text(path, "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/coverage.md"))
    parser.add_argument("--models", nargs="*", help="tv:<name> or timm:<name> (default: all)")
    parser.add_argument("--no-timm", action="store_true", help="torchvision only")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per model")
    parser.add_argument(
        "--render",
        action="store_true",
        help="rewrite the Markdown from the raw results, running nothing",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one model, JSON out
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(check_one(args.one)), flush=True)
        return 0
    raw = args.out.with_suffix(".jsonl")
    if args.render:
        rows = [json.loads(line) for line in raw.read_text().splitlines() if line.strip()]
        write_report(args.out, group(rows), "python benchmarks/coverage.py")
        return 0
    names = args.models or [n for n in torchvision_models() if n not in SKIPPED]
    if not args.models and not args.no_timm:
        try:
            import timm  # noqa: F401

            names += [f"timm:{n}" for n in TIMM_MODELS]
        except ImportError:
            print("timm is not installed (pip install prunegym[timm]): torchvision only")
    rows = []
    for name in names:
        rows.append(row := run_child(name, args.timeout))
        print(f"{name:32s} {row['status']:8s} {row.get('units', '-'):>4} units "
              f"{row['seconds']:7.1f} s {row.get('reason', '')[:100]}", flush=True)  # fmt: skip
    atomic_write_text(raw, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    sections = group(rows)
    write_report(args.out, sections, "python benchmarks/coverage.py")
    print(f"wrote {args.out}: " + "; ".join(f"{t} {summary(r)}" for t, r in sections.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
