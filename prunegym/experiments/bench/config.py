"""The bench file: ``bench:`` keys -> a frozen :class:`BenchConfig`, checked before any work.

Unknown keys and wrong types are :class:`~prunegym.experiments.config.ConfigError`
(one line, exit status 2), as in search configs; ``--set bench.seeds=[0,1]`` overrides
any key. Workload paths are search configs (``configs/digits.yaml``), read relative to
the current directory like every other path in a config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunegym.experiments.config import (
    Config,
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
    parse_yaml,
)
from prunegym.experiments.schedule_plan import refuse_schedule

#: What the summary's paired differences compare every searcher with.
REFERENCE_SEARCHERS = ("random", "uniform")
#: ... and every importance criterion with (when the bench has an importance axis).
REFERENCE_IMPORTANCE = "random"
#: What ``bench.resources_per_cell`` may ask of Ray for each cell.
CELL_RESOURCES = ("num_cpus", "num_gpus")


@dataclass(frozen=True)
class BenchConfig:
    """The matrix (workloads x targets x ratios x importances x searchers x seeds) and
    how each cell is searched, fine-tuned and summarised.

    ``targets``, ``ratios``, ``importances`` and ``episodes`` left empty take each
    workload's ``env.target``, ``env.ratio``, ``env.importance`` and
    ``search.episodes``. ``options`` maps a searcher to its ``search.options`` (a
    workload's own options are not used: they belong to the workload's agent).
    ``overrides`` are dotted keys set in every workload config (``env.reward: amc``).
    ``finetune_samples`` cuts each cell's fine-tune to that many training samples, drawn
    with the cell's seed (the same subset for every cell of that seed); unset: all.
    ``workers`` > 1 runs that many cells at once as Ray tasks, each with
    ``resources_per_cell`` (``num_cpus``, default 1, also its torch threads; ``num_gpus``,
    default 0) on ``address`` (unset: a local Ray instance sized to the workers; ``auto``
    or ``host:port`` / ``ray://host:port``: an existing cluster); 1 runs them one after
    the other in this process and never imports Ray.
    """

    workloads: tuple[str, ...] = ()
    searchers: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    ratios: tuple[float, ...] | None = None
    targets: tuple[str, ...] | None = None
    importances: tuple[str, ...] | None = None
    episodes: int | None = None
    finetune_epochs: int = 5
    finetune_samples: int | None = None  # a seeded subset of the train split (None: all)
    options: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"  # where fine-tuning runs (the search runs on env.device)
    threads: int | None = None  # torch CPU threads for the whole bench
    tensorboard: bool = False  # TensorBoard logs in every cell's run directory
    latency_repeats: int = 10  # the export's latency timing (only achieved latency ratios)
    bootstrap_samples: int = 10000
    bootstrap_seed: int = 0
    workers: int = 1  # cells at once (Ray tasks when > 1)
    resources_per_cell: dict[str, float] = field(default_factory=dict)  # num_cpus, num_gpus
    address: str | None = None  # the Ray cluster of workers > 1 (None: a local instance)

    def __post_init__(self) -> None:
        fix = object.__setattr__
        # empty workloads / searchers: a valid default, refused by check_names
        fix(self, "workloads", _items(self.workloads, str, "bench.workloads", empty_ok=True))
        fix(self, "searchers", _items(self.searchers, str, "bench.searchers", empty_ok=True))
        fix(self, "seeds", _items(self.seeds, int, "bench.seeds"))
        for name, kind in (("ratios", float), ("targets", str), ("importances", str)):
            value = getattr(self, name)
            if value is not None:
                fix(self, name, _items(value, kind, f"bench.{name}"))
        for name in ("options", "overrides", "resources_per_cell"):
            fix(self, name, dict(getattr(self, name)))
        _check_ranges(self)

    @property
    def cell_cpus(self) -> float:
        """The CPUs each cell's Ray task reserves (default 1)."""
        return float(self.resources_per_cell.get("num_cpus", 1.0))

    @property
    def cell_threads(self) -> int:
        """Torch threads of a cell run as a Ray task: its CPUs (at least 1)."""
        return max(1, int(self.cell_cpus))


@dataclass(frozen=True)
class BenchFile:
    """A bench YAML file: everything lives under ``bench:``."""

    bench: BenchConfig = field(default_factory=BenchConfig)


def _items(value: Any, kind: type, key: str, empty_ok: bool = False) -> tuple[Any, ...]:
    """A non-empty list of distinct ``kind`` values (a single value is a list of one)."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(f"{key} must be a list, got {type(value).__name__}")
    out = []
    for item in value:
        ok = isinstance(item, kind) or (kind is float and isinstance(item, int))
        if not ok or isinstance(item, bool):
            raise ConfigError(f"{key} must hold {_kind_name(kind)}, got {item!r}")
        out.append(float(item) if kind is float else item)
    if not out and not empty_ok:
        raise ConfigError(f"{key} is empty; it needs at least one value")
    if len(set(out)) != len(out):
        raise ConfigError(f"{key} lists a value twice: {out}")
    return tuple(out)


def _kind_name(kind: type) -> str:
    return {str: "strings", int: "integers", float: "numbers"}[kind]


def _check_ranges(b: BenchConfig) -> None:
    for ratio in b.ratios or ():
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"bench.ratios must lie in (0, 1], got {ratio}")
    if b.episodes is not None and b.episodes < 1:
        raise ConfigError(f"bench.episodes must be >= 1, got {b.episodes}")
    if b.finetune_epochs < 0:
        raise ConfigError(f"bench.finetune_epochs must be >= 0, got {b.finetune_epochs}")
    if b.finetune_samples is not None and b.finetune_samples < 1:
        raise ConfigError(f"bench.finetune_samples must be >= 1, got {b.finetune_samples}")
    if b.threads is not None and b.threads < 1:
        raise ConfigError(f"bench.threads must be >= 1, got {b.threads}")
    if b.latency_repeats < 1 or b.bootstrap_samples < 1:
        raise ConfigError("bench.latency_repeats and bench.bootstrap_samples must be >= 1")
    if b.workers < 1:
        raise ConfigError(f"bench.workers must be >= 1, got {b.workers}")
    for key, value in b.resources_per_cell.items():
        if key not in CELL_RESOURCES:
            raise ConfigError(f"bench.resources_per_cell: unknown resource {key!r}; known: "
                              f"{', '.join(CELL_RESOURCES)}")  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ConfigError(f"bench.resources_per_cell.{key} must be a number >= 0, "
                              f"got {value!r}")  # fmt: skip
    if not b.cell_cpus > 0:
        raise ConfigError("bench.resources_per_cell.num_cpus must be > 0")
    for name, opts in b.options.items():
        if not isinstance(opts, Mapping):
            raise ConfigError(f"bench.options.{name} must be a mapping of searcher options")


def load_bench_config(
    path: str | os.PathLike, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> BenchConfig:
    """Read a bench file, apply ``--set`` overrides and check every name and path in it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"bench config {p} does not exist")
    try:
        data = parse_yaml(p.read_text()) or {}
    except Exception as exc:  # yaml.YAMLError, UnicodeDecodeError
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{p} is not a valid YAML bench config: {reason}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p} must hold a mapping with a bench: section")
    cfg = from_dict(apply_overrides(data, overrides), BenchFile).bench
    check_names(cfg)
    return cfg


def check_names(cfg: BenchConfig) -> None:
    """Searchers, targets, importances and workload files that exist."""
    from prunegym.agents import BASELINES, SEARCHERS, make_searcher
    from prunegym.envs import TARGETS
    from prunegym.pruners import IMPORTANCES

    if not cfg.workloads:
        raise ConfigError("bench.workloads is empty; list at least one search config")
    if not cfg.searchers:
        raise ConfigError("bench.searchers is empty; name at least one searcher")
    for name in cfg.options:
        if name not in SEARCHERS:
            raise ConfigError(f"bench.options.{name}: unknown searcher {name!r}; "
                              f"known: {', '.join(SEARCHERS)}")  # fmt: skip
    for name in cfg.searchers:
        if name not in SEARCHERS:
            raise ConfigError(f"unknown searcher {name!r} in bench.searchers; "
                              f"known: {', '.join(SEARCHERS)}")  # fmt: skip
        if name in BASELINES:  # their options are checked without an env
            try:
                make_searcher(name, None, **cfg.options.get(name, {}))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"bench.options.{name}: {exc}") from None
    for key, values, known in (("targets", cfg.targets, TARGETS),
                               ("importances", cfg.importances, IMPORTANCES)):  # fmt: skip
        for value in values or ():
            if value not in known:
                raise ConfigError(f"unknown {key[:-1]} {value!r} in bench.{key}; "
                                  f"known: {', '.join(known)}")  # fmt: skip
    stems = [workload_name(w) for w in cfg.workloads]
    for path, stem in zip(cfg.workloads, stems, strict=True):
        if not Path(path).is_file():
            raise ConfigError(f"workload config {path} (bench.workloads) does not exist")
        if stems.count(stem) > 1:
            raise ConfigError(f"two workloads are named {stem!r} (bench.workloads); "
                              "rename one config file")  # fmt: skip


def workload_name(path: str) -> str:
    """A workload's name in the matrix: its config file's stem (``digits``)."""
    return Path(path).stem


def load_workload(cfg: BenchConfig, path: str) -> Config:
    """A workload's search config with the bench's ``overrides`` applied."""
    work = load_config(path, dict(cfg.overrides))
    try:
        refuse_schedule(work, "bench")  # every cell is one search at one budget
    except ConfigError as exc:
        raise ConfigError(f"workload {path}: {exc}") from None
    ckpt = work.workload.checkpoint
    if ckpt is not None and not Path(ckpt).is_file():
        raise ConfigError(f"workload {path}: checkpoint {ckpt} does not exist "
                          "(train it first, see the workload config)")  # fmt: skip
    return work
