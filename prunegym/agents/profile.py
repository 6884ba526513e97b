"""Profile transfer (a cheap baseline, no agent): a source policy's shape on a new model.

The source's per-unit sparsities (``best_policy.json`` of a source run) are mapped onto
the target's units by relative depth (unit ``i`` of ``n`` sits at ``i / (n - 1)``) and
unit kind (a target unit takes the profile of the source units of its kind, linearly
interpolated in depth; of all source units when the source has none of its kind), then
scaled until they fill the target's budget: the smallest scale that meets it, after
which no unit can keep one more rounding step (``round_to`` channels) without
exceeding it. One evaluation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from prunegym.agents.episodes import play_episode
from prunegym.agents.metadata import GAME_FILE, METADATA_FILE
from prunegym.agents.searcher import Searcher
from prunegym.envs.contract import PruningGame, describe_game, game_of
from prunegym.pruners import PruningError, PruningPolicy
from prunegym.pruners.rounding import kept_channels, kept_weights

POLICY_FILE = "best_policy.json"


@dataclass(frozen=True)
class SourceProfile:
    """A source policy's sparsities in execution order, and its units' kinds if known."""

    sparsities: tuple[float, ...]
    kinds: tuple[str, ...] | None
    granularity: str
    where: str


def read_profile(
    source: str | os.PathLike[str] | PruningPolicy, kinds: Sequence[str] | None = None
) -> SourceProfile:
    """The profile of ``source``: a run directory (its ``best_policy.json``; the kinds from
    its ``game.json`` or ``agent.json``), a policy JSON file or a :class:`PruningPolicy`
    (``kinds``: the source units' kinds, when known)."""
    if isinstance(source, PruningPolicy):
        policy, where = source, "the given policy"
    else:
        path = Path(source)
        run_dir = path if path.is_dir() else None
        file = path / POLICY_FILE if run_dir is not None else path
        if not file.is_file():
            missing = f"{path} has no {POLICY_FILE}: not a finished search run"
            raise ValueError(missing if run_dir is not None else f"policy {path} does not exist")
        try:
            policy, where = PruningPolicy.from_json(file), str(file)
        except (UnicodeDecodeError, PruningError) as exc:
            reason = "not text" if isinstance(exc, UnicodeDecodeError) else exc
            raise ValueError(f"{file} is not a prunegym policy ({reason})") from None
        if kinds is None and run_dir is not None:
            kinds = _recorded_kinds(run_dir)
    values = tuple(float(s) for s in policy.sparsities.values())
    if not values:
        raise ValueError(f"{where} holds no unit sparsities")
    if kinds is not None and len(kinds) != len(values):
        raise ValueError(f"{len(kinds)} unit kinds for {len(values)} units in {where}")
    return SourceProfile(values, None if kinds is None else tuple(map(str, kinds)),
                         policy.granularity, where)  # fmt: skip


def _recorded_kinds(run_dir: Path) -> list[str] | None:
    """The units' kinds a run recorded (``game.json``, else ``agent.json``), if one game."""
    for name, key in ((GAME_FILE, "games"), (METADATA_FILE, "sources")):
        file = run_dir / name
        if file.is_file():
            games = json.loads(file.read_text()).get(key) or []
            if len(games) == 1 and "unit_kinds" in games[0]:
                return [str(k) for k in games[0]["unit_kinds"]]
    return None


def _depths(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)


def map_profile(
    sparsities: Sequence[float], kinds: Sequence[str] | None, target_kinds: Sequence[str]
) -> np.ndarray:
    """The source ``sparsities`` at the target's units: by relative depth among the source
    units of the target unit's kind (all source units when none has it or kinds are unknown)."""
    s = np.asarray(sparsities, dtype=np.float64)
    depth = _depths(len(s))
    out = np.empty(len(target_kinds))
    for j, (d, kind) in enumerate(zip(_depths(len(target_kinds)), target_kinds, strict=True)):
        pool = [i for i, k in enumerate(kinds or ()) if k == kind] or list(range(len(s)))
        out[j] = np.interp(d, depth[pool], s[pool])
    return out


class _Levels:
    """Kept counts of the target's units as the game rounds them (no model needed)."""

    def __init__(self, channels: Sequence[int], granularity: str, round_to: int) -> None:
        self.channels = np.asarray(channels, dtype=np.int64)
        self.weight = granularity == "weight"
        self.step = 1 if self.weight else int(round_to)

    def kept(self, sparsities: np.ndarray) -> np.ndarray:
        if self.weight:
            return kept_weights(self.channels, sparsities)
        return kept_channels(self.channels, sparsities, self.step)

    def one_more(self, j: int, kept: int) -> float:
        """The sparsity at which unit ``j`` keeps one rounding step more than ``kept``."""
        return 1.0 - min(kept + self.step, int(self.channels[j])) / float(self.channels[j])


def fill_budget(game: PruningGame, profile: np.ndarray, levels: _Levels) -> np.ndarray:
    """The profile scaled to the smallest scale that meets the budget, then topped up one
    rounding step at a time (most pruned unit first) until no unit can keep more."""
    lo, hi = game.min_sparsity, game.max_sparsity
    p = np.clip(np.asarray(profile, dtype=np.float64), 0.0, None)
    p = p if p.max() > 0 else np.ones_like(p)  # an unpruned source: no shape to keep
    top = np.clip(p / p.max() * hi, lo, hi)  # the profile with its most pruned unit at hi

    def path(tau: float) -> np.ndarray:  # non-decreasing in tau: 0 all lo, 1 top, 2 all hi
        if tau <= 1.0:
            return np.clip(tau * top, lo, hi)
        return top + (tau - 1.0) * (hi - top)

    a, b = 0.0, 2.0
    if game.within_budget(path(a)):
        b = a
    for _ in range(60 if b > a else 0):
        mid = (a + b) / 2
        a, b = (a, mid) if game.within_budget(path(mid)) else (mid, b)
    s = path(b)
    changed = True
    while changed:
        changed = False
        kept = levels.kept(s)
        for j in np.argsort(-s, kind="stable"):
            trial = s.copy()
            trial[j] = max(levels.one_more(int(j), int(kept[j])), lo)
            if levels.kept(trial)[j] > kept[j] and game.within_budget(trial):
                s, kept, changed = trial, levels.kept(trial), True
    return s


class ProfileSearcher(Searcher):
    """Profile transfer: the source policy's shape on this game, filling its budget.

    ``source``: a run directory (``best_policy.json``; the unit kinds it recorded), a
    policy JSON file, or a :class:`PruningPolicy`; ``kinds``: the source units' kinds
    when the source does not record them (otherwise the mapping is by depth only). The
    policy is deterministic: the search stops once it is evaluated.
    """

    name = "profile"

    def __init__(
        self,
        env: gym.Env | None = None,
        seed: int = 0,
        source: str | os.PathLike[str] | PruningPolicy | None = None,
        kinds: Sequence[str] | None = None,
    ) -> None:
        if source is None:
            raise ValueError("the profile searcher needs source= (a run directory or a policy)")
        super().__init__(env, seed)
        self.source = source if isinstance(source, PruningPolicy) else os.fspath(source)
        self.profile = read_profile(self.source, kinds)
        self.sparsities: list[float] = []
        if env is not None:
            self._check(env)

    def _check(self, env: gym.Env) -> dict[str, Any]:
        game = describe_game(env)
        if self.profile.granularity != game["granularity"]:
            raise ValueError(f"{self.profile.where} is a {self.profile.granularity} policy; "
                             f"the target prunes {game['granularity']}s")  # fmt: skip
        return dict(game)

    def plan(self, env: gym.Env) -> np.ndarray:
        """The sparsities the searcher plays on ``env`` (no evaluation)."""
        game = self._check(env)
        mapped = map_profile(self.profile.sparsities, self.profile.kinds, game["unit_kinds"])
        levels = _Levels(game["unit_channels"], game["granularity"], game["round_to"])
        return fill_budget(game_of(env), mapped, levels)

    def _run(self, env: gym.Env, episodes: int) -> None:
        if self.history:
            return  # deterministic: solved
        s = self.plan(env)
        self.sparsities = s.tolist()
        game = self.game  # actions are relative to the wall's state: ask it at each step
        record = play_episode(env, lambda _obs, t: game.action_for_sparsity(float(s[t])), 0,
                              seed=self._reset_seed())  # fmt: skip
        self._record(record)
        self._safe_point()

    def report(self) -> dict[str, Any]:
        """What ``transfer.json`` holds for a profile transfer."""
        zero = self.history[0] if self.history else None
        return {
            "source": self.profile.where,
            "mode": "profile",
            "mapped_by": "relative depth and unit kind"
            if self.profile.kinds is not None
            else "relative depth (the source's unit kinds are unknown)",
            "source_sparsities": list(self.profile.sparsities),
            "differences": [
                f"units: {len(self.profile.sparsities)} (source) -> {len(self.unit_names)} (target)"
            ],
            "zero_shot": None if zero is None else {"reward": zero.reward, **zero.metrics},
        }
