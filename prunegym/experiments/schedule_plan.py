"""What a pruning schedule means: its budgets, their checks and each step's config.

Budget semantics:

- every value of ``run.schedule`` is a ratio of the ORIGINAL dense cost (MACs or
  params, ``env.target``), in (0, 1] and strictly decreasing: ``[0.7, 0.5, 0.3]``
  ends with at most 30% of the dense MACs;
- step ``k`` searches on the network step ``k - 1`` produced, whose cost is
  ``current``; its env's ratio (relative to that network) is chosen so that its budget
  is the schedule's, exactly: ``floor(ratio * current) == floor(target * dense)``, i.e.
  ``ratio ~ target * dense / current`` (:func:`step_ratio`). When the previous step
  already went below this step's target, the ratio is 1 (the network may not grow);
- each step must stay above the rounding floor of the ORIGINAL network: the smallest
  ratio one search can reach from it (every unit at ``max_sparsity``, kept channels
  rounded up to ``round_to``). A pruned network's floor is never higher (kept counts
  only shrink and the cost grows with each of them), so every step is then reachable
  whatever the earlier steps kept; a value below it is refused before any work, even
  though a lucky schedule might reach it.

A schedule needs channel pruning and a counted target (``macs`` or ``params``): masks
(weight granularity) do not make the next step's network smaller, and a latency budget
would compare timings measured on different networks.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from prunegym.experiments.config import Config, ConfigError

#: The file a finished step leaves for the next one: its fine-tuned pruned network as a
#: prunegym checkpoint (``save_checkpoint(pruned=True)``), the next step's workload.
STEP_MODEL_FILE = "pruned_model.pt"
#: Searcher options of an RL agent that mean the same to the transfer searcher.
CARRIED_OPTIONS = ("replay_episodes", "rollout_episodes")
RL_SEARCHERS = ("ddpg", "td3", "sac", "ppo", "transfer")


@dataclass(frozen=True)
class Floor:
    """The original network's cost and the smallest cost one search can reach from it."""

    kind: str
    dense_cost: int
    floor_cost: int
    max_sparsity: float
    round_to: int

    @property
    def ratio(self) -> float:
        return self.floor_cost / self.dense_cost


def check_schedule(cfg: Config) -> list[float]:
    """The schedule's budgets, or a one-line :class:`ConfigError`: not empty, each in
    (0, 1], strictly decreasing, channel pruning with a ``macs`` or ``params`` target."""
    values = cfg.run.schedule
    if values is None:
        raise ConfigError("run.schedule is not set")
    if not values:
        raise ConfigError("run.schedule is empty; give budgets like [0.7, 0.5, 0.3]")
    for i, value in enumerate(values, 1):
        if not (math.isfinite(value) and 0.0 < value <= 1.0):
            raise ConfigError(f"run.schedule step {i} is {value:g}; every budget must be a "
                              "ratio of the dense cost in (0, 1]")  # fmt: skip
    for i, (a, b) in enumerate(itertools.pairwise(values), 2):
        if not b < a:
            raise ConfigError(f"run.schedule must be strictly decreasing: step {i} ({b:g}) "
                              f"does not go below step {i - 1} ({a:g})")  # fmt: skip
    if cfg.env.granularity != "channel":
        raise ConfigError("run.schedule needs env.granularity channel: weight masks do not "
                          "make the next step's network smaller")  # fmt: skip
    if cfg.env.target not in ("macs", "params"):
        raise ConfigError(f"run.schedule needs env.target macs or params, not "
                          f"{cfg.env.target!r}: each step's budget is a count of the "
                          "original network's cost")  # fmt: skip
    if cfg.run.epochs_per_step is not None and cfg.run.epochs_per_step < 0:
        raise ConfigError(f"run.epochs_per_step must be >= 0, got {cfg.run.epochs_per_step}")
    if cfg.run.step_warmup_episodes < 0:
        raise ConfigError(f"run.step_warmup_episodes must be >= 0, got "
                          f"{cfg.run.step_warmup_episodes}")  # fmt: skip
    return [float(v) for v in values]


def refuse_schedule(cfg: Config, command: str) -> None:
    """A one-line :class:`ConfigError` when ``run.schedule`` is set for ``prunegym
    command``, which runs one search at one budget (only ``prunegym run`` runs schedules)."""
    if cfg.run.schedule is not None:
        raise ConfigError(f"run.schedule is set, but prunegym {command} runs one search at "
                          "one budget; prune iteratively with prunegym run (or unset "
                          "run.schedule)")  # fmt: skip


def budget(target: float, dense_cost: int) -> int:
    """The largest cost allowed at ``target`` of ``dense_cost``: ``floor(target * dense)``
    in exact arithmetic, as the env counts it."""
    return math.floor(Fraction(target) * int(dense_cost))


def step_ratio(target: float, dense_cost: int, current_cost: int) -> float:
    """The env ratio, relative to a network of cost ``current_cost``, whose budget is
    ``target`` of the original ``dense_cost``: the smallest float ``r`` <= 1 with
    ``floor(r * current) == floor(target * dense)`` (1 when the current network is
    already within that budget). ``target`` itself when nothing was pruned yet."""
    if int(current_cost) == int(dense_cost):
        return float(target)
    allowed = budget(target, dense_cost)
    if allowed >= current_cost:
        return 1.0
    ratio = float(Fraction(allowed, int(current_cost)))
    while math.floor(Fraction(ratio) * int(current_cost)) < allowed:
        ratio = math.nextafter(ratio, 2.0)
    while math.floor(Fraction(ratio) * int(current_cost)) > allowed:
        ratio = math.nextafter(ratio, 0.0)
    return ratio


def check_floor(targets: list[float], floor: Floor) -> None:
    """A one-line :class:`ConfigError` for the first budget below the original network's
    rounding floor (see the module's docstring)."""
    for i, target in enumerate(targets, 1):
        if floor.floor_cost > budget(target, floor.dense_cost):
            raise ConfigError(
                f"run.schedule step {i} ({target:g}) is below the rounding floor: the "
                f"smallest {floor.kind} ratio reachable from the original network is "
                f"{floor.ratio:.4g} (max_sparsity={floor.max_sparsity:g} on every unit, kept "
                f"channels rounded up to multiples of {floor.round_to})"
            )


def floor_of(env: Any) -> Floor:
    """The :class:`Floor` of a pruning env built on the original network."""
    base = env.unwrapped
    target = base.target
    return Floor(target.kind, int(target.dense_cost), int(base.wall.floor),
                 float(base.max_sparsity), int(base.round_to))  # fmt: skip


def step_name(index: int, target: float) -> str:
    """The directory of step ``index`` (1-based) under the schedule's: ``step-1-0.70``."""
    return f"step-{index}-{target:.2f}"


def carries_agent(cfg: Config) -> bool:
    """Whether the steps after the first continue the previous step's RL agent."""
    return cfg.search.agent in RL_SEARCHERS and not cfg.run.restart_agent


def step_config(
    cfg: Config, index: int, ratio: float, step_dir: Path, previous: Path | None
) -> Config:
    """The ordinary run config of step ``index``: ``cfg`` at env ratio ``ratio`` (relative
    to the current network), written to ``step_dir``, pruning the network ``previous``
    (the previous step's directory; ``None`` for the first step: the config's own model).

    After the first step an RL agent carries over: searcher ``transfer`` from the
    previous step's directory (a fresh replay buffer sized to this network's units;
    ``replay_episodes`` and ``rollout_episodes`` kept from the config's options, a
    ``transfer`` config's own options but its source) with a short warm-up of
    ``run.step_warmup_episodes`` episodes, unless ``run.restart_agent`` (a fresh agent
    with the config's options, its full warm-up included). Baseline searchers run again
    with their options.
    """
    changes: dict[str, Any] = {"env.ratio": float(ratio), "run.out": str(step_dir),
                               "run.schedule": None}  # fmt: skip
    if previous is not None:
        changes["workload.checkpoint"] = str(previous / STEP_MODEL_FILE)
        if carries_agent(cfg):
            keep = (lambda k: k != "source") if cfg.search.agent == "transfer" else (
                lambda k: k in CARRIED_OPTIONS)  # fmt: skip
            options = {k: v for k, v in cfg.search.options.items() if keep(k)}
            changes["search.agent"] = "transfer"
            changes["search.options"] = {
                **options,
                "source": str(previous),
                "warmup_episodes": cfg.run.step_warmup_episodes,
            }
    return cfg.replace(**changes)
