"""Picking the answer of a search without the winner's curse.

The best of N candidates on one fixed slice of the reward split is, on average, luckier
there than it is good: its score is biased upwards, the more so the more candidates were
tried. So the ``top_k`` best distinct candidates by search reward (plus any extra one,
such as an RL agent's deterministic policy) are re-scored on a second, disjoint
held-out slice (:meth:`~prunegym.envs.contract.PruningGame.score_heldout`; never the
test split) and the best there is the answer. Both scores are kept on the records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from prunegym.agents.results import EpisodeRecord
from prunegym.envs.contract import PruningGame

TOP_K = 5


def top_candidates(history: Iterable[EpisodeRecord], k: int = TOP_K) -> list[EpisodeRecord]:
    """The ``k`` best records by search reward, one per network (kept counts); the
    earliest record of a network represents it, ties go to the earlier episode."""
    first: dict[tuple[float, ...], EpisodeRecord] = {}
    for rec in history:
        key: tuple[float, ...] = rec.kept or tuple(round(s, 12) for s in rec.sparsities)
        if key not in first or rec.reward > first[key].reward:
            first[key] = rec
    ranked = sorted(first.values(), key=lambda r: (-r.reward, r.episode))
    return ranked[: max(0, int(k))]


def rescore(game: PruningGame, candidates: Sequence[EpisodeRecord]) -> list[EpisodeRecord]:
    """``candidates`` with their held-out scores (unchanged when the game has none)."""
    out = []
    for rec in candidates:
        score = None if rec.policy is None else game.score_heldout(rec.policy)
        if score is None:
            out.append(rec)
            continue
        heldout = {"accuracy": float(score["accuracy"]), "reward": float(score["reward"])}
        out.append(dataclasses.replace(rec, heldout=heldout))
    return out


def pick(candidates: Sequence[EpisodeRecord]) -> EpisodeRecord | None:
    """The best held-out reward (then the best search reward, then the earliest); the
    best search reward when no candidate has a held-out score."""
    if not candidates:
        return None
    scored = [r for r in candidates if "reward" in r.heldout]
    pool = scored or list(candidates)
    return min(pool, key=lambda r: (-r.heldout.get("reward", r.reward), -r.reward, r.episode))
