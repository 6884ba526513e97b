"""How well does each evaluator configuration rank candidates by their fine-tuned accuracy?

Usage (from the repository root, on a trained workload config):

    python benchmarks/bench_proxy.py --config configs/resnet20-fmnist.yaml \
        [--candidates 24] [--finetune-epochs 1] [--finetune-samples 10000] \
        [--threads 2] [--set KEY=VALUE ...] [--out runs/proxy]

1. Candidates: ``--candidates`` policies at the config's budget (seeded with the config's
   seed, or ``--seed``): the uniform policy (``prunegym.agents.uniform_sparsity``), then
   budget-filling policies (``prunegym.agents.fill_budget``) of a spread of profiles in
   turn: the random searcher's draw, sparsity rising or falling with depth, peaking in
   the middle, concentrated on a few units. Candidates with the same kept counts are
   drawn again, so every candidate is a different network.
2. Proxies: every candidate is played in four envs built from the config (``build_env``)
   that differ only in ``env.evaluator.bn_recalibration`` and ``env.reconstruction``:
   ``none``, ``bn``, ``recon``, ``both``. Each reads the same search slice of reward_val
   (``env.evaluator.subset_size``); its seconds per candidate are the evaluator's own.
3. Ground truth: the candidate applied for real as ``prunegym export`` does it with the
   ``both`` configuration (physical pruning with reconstruction, BN recalibrated on the
   search's calibration batches), then a SHORTENED fine-tune: ``--finetune-epochs`` over
   a seeded random ``--finetune-samples`` subset of the train split (export's fine-tune
   settings otherwise), and top-1 on the reward_val samples outside the proxy's search
   slice (asserted disjoint; the test split is never read). The top-1 of the same model
   before fine-tuning, on the same samples, is reported too.
4. Kendall tau and Spearman rho (scipy) of each proxy against the ground truth, with a
   bootstrap 95% interval over candidates and the paired difference of tau to ``both``.

Writes ``OUT/<config stem>.json`` (every candidate, the settings, both slices' indices)
and ``OUT/<config stem>.md`` (the table, printed too), each atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from scipy import stats
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from prunegym.agents import fill_budget, uniform_sparsity
from prunegym.experiments.config import Config, load_config
from prunegym.experiments.export import ExportOptions, recalibrate_as_searched
from prunegym.experiments.training import evaluate, fine_tune, resolve_device
from prunegym.experiments.workload import build_env, build_workload
from prunegym.utils.files import atomic_write_text, write_json

#: configuration -> (env.evaluator.bn_recalibration, env.reconstruction)
CONFIGURATIONS: dict[str, tuple[bool, bool]] = {
    "none": (False, False),
    "bn": (True, False),
    "recon": (False, True),
    "both": (True, True),
}
TRUTH_FROM = "both"  # the configuration whose pruned model is fine-tuned (as export does)
PROFILES = ("random", "ramp-up", "ramp-down", "middle", "concentrated")
BOOTSTRAP = 2000
MAX_MISSES = 200  # draws in a row without a new network before the search gives up
SHORTENED = ("SHORTENED: finetune_epochs over finetune_samples train samples (export's lr and "
             "batch size), not the full export fine-tune")  # fmt: skip


@dataclass(frozen=True)
class StudyOptions:
    """Everything the study depends on besides the workload config."""

    candidates: int = 24
    finetune_epochs: int = 1
    finetune_samples: int = 10_000
    seed: int | None = None  # None: the config's seed
    device: str = "auto"  # where the fine-tune runs (the proxies run on env.device)
    progress: bool = True


# ----------------------------------------------------------------------------- candidates
def profile_shares(profile: str, rng: np.random.Generator, game: Any) -> np.ndarray:
    """Per-unit sparsities of one profile, before ``fill_budget`` scales them."""
    n = game.n_units
    if profile == "random":  # the random searcher's draw
        return rng.uniform(game.min_sparsity, game.max_sparsity, n)
    if profile == "concentrated":  # most of the pruning on a few units
        return rng.dirichlet(np.full(n, 0.3))
    depth = np.linspace(0.0, 1.0, n)
    shapes = {"ramp-up": 0.1 + depth, "ramp-down": 1.1 - depth,
              "middle": 1.1 - np.abs(2.0 * depth - 1.0)}  # fmt: skip
    return shapes[profile] * rng.uniform(0.75, 1.25, n)


def draw_candidates(env: Any, n: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """``n`` in-budget candidates ``(profile, sparsities)`` with distinct kept counts."""
    game = env.unwrapped
    rng = np.random.default_rng(seed)
    out = [("uniform", np.full(game.n_units, uniform_sparsity(game)))]
    seen = {tuple(game.wall.kept(out[0][1]))}
    misses = 0  # draws in a row that gave no new network
    while len(out) < n:
        if misses == MAX_MISSES:
            raise ValueError(f"found only {len(out)} distinct candidates at this budget "
                             f"({MAX_MISSES} draws in a row gave none); ask for fewer "
                             "(--candidates)")  # fmt: skip
        profile = PROFILES[(len(out) - 1) % len(PROFILES)]
        sparsities = fill_budget(game, profile_shares(profile, rng, game))
        kept = tuple(game.wall.kept(sparsities))
        misses += 1
        if kept not in seen and game.within_budget(sparsities):
            seen.add(kept)
            out.append((profile, sparsities))
            misses = 0
    return out


# ----------------------------------------------------------------------------- measuring
def configuration_envs(cfg: Config, model: Any, data: Any) -> tuple[dict[str, Any], dict]:
    """One env per configuration (the config with only BN recalibration and
    reconstruction changed) and the seconds each took to build."""
    envs, setup = {}, {}
    for name, (bn, recon) in CONFIGURATIONS.items():
        start = time.perf_counter()
        changed = cfg.replace(**{"env.evaluator.bn_recalibration": bn,
                                 "env.reconstruction": recon})  # fmt: skip
        envs[name] = build_env(changed, model, data)
        setup[name] = time.perf_counter() - start
    return envs, setup


def disjoint_slices(envs: dict[str, Any], data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(the proxies' search slice, the ground truth's: the rest of reward_val), as
    indices into reward_val; every configuration reads the same search slice."""
    search = np.asarray(envs[TRUTH_FROM].unwrapped.evaluator.subset_indices)
    for name, env in envs.items():
        if not np.array_equal(env.unwrapped.evaluator.subset_indices, search):
            raise RuntimeError(f"configuration {name} reads another search slice")
    truth = np.setdiff1d(np.arange(len(data.reward_val)), search)
    if len(truth) == 0:
        raise ValueError(
            "the search slice is the whole reward split: set env.evaluator.subset_size "
            "to leave samples for the ground truth"
        )
    assert not np.intersect1d(truth, search).size, "ground truth overlaps the proxy slice"
    return search, truth


def play_everywhere(envs: dict[str, Any], sparsities: np.ndarray, seed: int) -> dict[str, Any]:
    """The candidate played in every configuration's env: its proxies and their seconds."""
    row: dict[str, Any] = {"proxy": {}, "seconds": {}, "route": {}}
    for name, env in envs.items():
        _, info = env.unwrapped.play(list(sparsities), seed=seed)
        if "kept" in row and row["kept"] != info["kept_counts"]:
            raise RuntimeError(f"configuration {name} played other kept counts")
        row.update(kept=info["kept_counts"], macs_ratio=info["macs_ratio"])
        row["proxy"][name] = info["accuracy"]
        row["seconds"][name] = info["seconds"]["evaluation"]
        row["route"][name] = info["evaluation"]["mode"]
        if name == TRUTH_FROM:
            row["policy"] = info["policy"]
    return row


def ground_truth(env: Any, policy: Any, train: Subset, truth: list, opts: StudyOptions,
                 seed: int) -> dict[str, float]:  # fmt: skip
    """Apply as export does, score before, fine-tune (shortened), score after."""
    base, export = env.unwrapped, ExportOptions()
    device = resolve_device(opts.device)
    pruned = base.pruner.apply(policy)
    recalibrate_as_searched(pruned, base.evaluator)
    before = evaluate(pruned, truth, device=device).top1
    loader = DataLoader(train, batch_size=export.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    result = fine_tune(pruned, loader, opts.finetune_epochs, lr=export.lr, seed=seed,
                       device=device, progress=False)  # fmt: skip
    after = evaluate(pruned, truth, device=device).top1
    return {"before_fine_tune": before, "fine_tuned": after, "fine_tune_seconds": result.seconds}


def fine_tune_subset(data: Any, samples: int, seed: int) -> Subset:
    """A seeded random ``samples`` of the (augmented) train split."""
    rng = np.random.default_rng(seed)
    n = min(samples, len(data.train))
    return Subset(data.train, np.sort(rng.choice(len(data.train), n, replace=False)).tolist())


# ----------------------------------------------------------------------------- statistics
def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def rank_statistics(rows: list[dict[str, Any]], seed: int) -> dict[str, dict[str, Any]]:
    """Per proxy (and the pre-fine-tune accuracy): tau, rho, p-values, a bootstrap 95%
    interval of tau, and the paired bootstrap difference of tau to ``both``."""
    truth = np.array([r["truth"]["fine_tuned"] for r in rows])
    scores = {k: np.array([r["proxy"][k] for r in rows]) for k in CONFIGURATIONS}
    scores["before fine-tune"] = np.array([r["truth"]["before_fine_tune"] for r in rows])
    draws = np.random.default_rng(seed).integers(0, len(truth), (BOOTSTRAP, len(truth)))
    boot: dict[str, np.ndarray] = {}
    out: dict[str, dict[str, Any]] = {}
    for name, score in scores.items():
        with warnings.catch_warnings():  # constant inputs (ties everywhere) give NaN
            warnings.simplefilter("ignore")
            tau, rho = stats.kendalltau(score, truth), stats.spearmanr(score, truth)
            boot[name] = np.array([stats.kendalltau(score[d], truth[d]).statistic for d in draws])
        lo, hi = _interval(boot[name])
        out[name] = {"tau": _finite(tau.statistic), "tau_p": _finite(tau.pvalue),
                     "rho": _finite(rho.statistic), "rho_p": _finite(rho.pvalue),
                     "tau_ci": [lo, hi]}  # fmt: skip
    for name, entry in out.items():
        lo, hi = _interval(boot[name] - boot[TRUTH_FROM])
        delta = None if None in (entry["tau"], out[TRUTH_FROM]["tau"]) else (
            entry["tau"] - out[TRUTH_FROM]["tau"])  # fmt: skip
        entry["delta_tau_vs_both"] = {"delta": delta, "ci": [lo, hi]}
    return out


def _interval(values: np.ndarray) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------- report
def _num(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _with_interval(value: float | None, ci: Sequence[float | None], sign: str) -> str:
    lo, hi = ci
    return f"{_num(value, sign + '.3f')} [{_num(lo, sign + '.2f')}, {_num(hi, sign + '.2f')}]"


def markdown(result: dict[str, Any]) -> str:
    """The study's table: tau, rho, the difference to ``both``, seconds per candidate."""
    rows, s = result["candidates"], result["settings"]
    truth = [r["truth"]["fine_tuned"] for r in rows]
    lines = [
        f"**{result['config']}** ({result['model']}; {len(rows)} candidates at "
        f"{s['target']} ratio {s['ratio']}; proxy on {s['search_samples']} reward_val "
        f"samples, ground truth on the other {s['truth_samples']}: top-1 after a shortened "
        f"fine-tune of {s['finetune_epochs']} epoch(s) on {s['finetune_samples']} train "
        f"samples, {min(truth):.2%} to {max(truth):.2%})",
        "",
        "| configuration | Kendall tau [95% CI] | Spearman rho | delta tau vs both [95% CI] "
        "| s / candidate (median) | setup s |",
        "|---|---|---|---|---|---|",
    ]
    for name, st in result["statistics"].items():
        tau = _with_interval(st["tau"], st["tau_ci"], "")
        d = st["delta_tau_vs_both"]
        delta = "-" if name == TRUTH_FROM else _with_interval(d["delta"], d["ci"], "+")
        if name in CONFIGURATIONS:
            secs = f"{np.median([r['seconds'][name] for r in rows]):.3f}"
            setup = f"{result['setup_seconds'][name]:.1f}"
        else:  # the pre-fine-tune accuracy: measured on the ground truth's samples
            secs, setup = "-", "-"
        lines.append(f"| {name} | {tau} | {_num(st['rho'])} | {delta} | {secs} | {setup} |")
    ft = [r["truth"]["fine_tune_seconds"] for r in rows]
    lines += ["", f"Fine-tune {np.median(ft):.1f} s median per candidate; total "
              f"{result['seconds']:.0f} s; {result['machine']}."]  # fmt: skip
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the study
def run_study(cfg: Config, opts: StudyOptions, config_name: str = "config") -> dict[str, Any]:
    """The whole study on one workload config; returns what the JSON file holds."""
    start, load = time.perf_counter(), os.getloadavg()
    seed = cfg.seed if opts.seed is None else opts.seed
    model, data = build_workload(cfg, progress=opts.progress)
    envs, setup = configuration_envs(cfg, model, data)
    try:
        search, truth_idx = disjoint_slices(envs, data)
        truth = list(DataLoader(Subset(data.reward_val, truth_idx.tolist()), batch_size=256))
        train = fine_tune_subset(data, opts.finetune_samples, seed)
        drawn = draw_candidates(envs[TRUTH_FROM], opts.candidates, seed)
        rows = []
        for i, (profile, sparsities) in enumerate(tqdm(drawn, desc="candidates",
                                                       disable=not opts.progress)):  # fmt: skip
            row = {"index": i, "profile": profile, **play_everywhere(envs, sparsities, seed)}
            row["truth"] = ground_truth(envs[TRUTH_FROM], row.pop("policy"), train, truth,
                                        opts, seed)  # fmt: skip
            rows.append(row)
    finally:
        for env in envs.values():
            env.close()
    game = envs[TRUTH_FROM].unwrapped
    settings = {**asdict(opts), "seed": seed, "target": game.target.kind,
                "ratio": game.target_ratio, "search_samples": len(search),
                "truth_samples": len(truth_idx), "finetune_samples": len(train),
                "fine_tune": SHORTENED}  # fmt: skip
    return {
        "config": config_name, "model": str(cfg.workload.model or cfg.workload.checkpoint),
        "settings": settings, "setup_seconds": setup, "candidates": rows,
        "statistics": rank_statistics(rows, seed),
        "slices": {"search": search.tolist(), "truth": truth_idx.tolist()},
        "seconds": time.perf_counter() - start,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch "
                   f"{torch.__version__}, {torch.get_num_threads()} threads, load average "
                   f"{load[0]:.2f} at start and {os.getloadavg()[0]:.2f} at end",
    }  # fmt: skip


def write_results(result: dict[str, Any], out: Path, stem: str) -> str:
    """``OUT/<stem>.json`` and ``OUT/<stem>.md`` (atomically); returns the markdown."""
    text = markdown(result)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{stem}.json", result, allow_nan=False)
    atomic_write_text(out / f"{stem}.md", text)
    return text


# ----------------------------------------------------------------------------- the CLI
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _Parser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--config", type=Path, required=True, help="a trained workload config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override (repeatable): workload.checkpoint=PATH")  # fmt: skip
    p.add_argument("--candidates", type=int, default=StudyOptions.candidates)
    p.add_argument("--finetune-epochs", type=int, default=StudyOptions.finetune_epochs)
    p.add_argument("--finetune-samples", type=int, default=StudyOptions.finetune_samples)
    p.add_argument("--seed", type=int, default=None, help="candidates' seed (default: config's)")
    p.add_argument("--device", default="auto", help="fine-tune device: auto, cpu, cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("runs/proxy"))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    for flag, value, least in (("--candidates", args.candidates, 3),
                               ("--finetune-epochs", args.finetune_epochs, 1),
                               ("--finetune-samples", args.finetune_samples, 1),
                               ("--threads", args.threads, 1)):  # fmt: skip
        if value is not None and value < least:
            raise ValueError(f"{flag} must be >= {least}, got {value}")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is not a directory")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        cfg = load_config(args.config, args.overrides)
    except ValueError as exc:
        print(f"bench_proxy: error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    opts = StudyOptions(args.candidates, args.finetune_epochs, args.finetune_samples, args.seed,
                        args.device, not args.no_progress)  # fmt: skip
    try:
        result = run_study(cfg, opts, str(args.config))
    except ValueError as exc:  # a config or workload that cannot be studied
        print(f"bench_proxy: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(write_results(result, args.out, args.config.stem), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
