"""Searchers by name: the baselines and the RL agents, one interface.

``make_searcher(name, env, seed, **options)``; every searcher is a
:class:`~prunegym.agents.searcher.Searcher`:

- ``uniform``, ``random``, ``random-raw``, ``evolution``:
  :mod:`prunegym.agents.baselines`; ``cmaes``: :mod:`prunegym.agents.cmaes`;
- ``profile``, ``transfer`` (option ``source``: a source run): :mod:`prunegym.agents.profile`
  and :mod:`prunegym.agents.transfer`;
- ``ddpg`` / ``td3`` / ``sac`` / ``ppo``: :class:`~prunegym.agents.rl.RLSearcher`
  around :func:`~prunegym.agents.factory.make_agent`.
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym

from prunegym.agents.baselines import (
    EvolutionSearcher,
    RandomSearcher,
    RawRandomSearcher,
    UniformSearcher,
)
from prunegym.agents.cmaes import CMAESSearcher
from prunegym.agents.factory import ALGOS
from prunegym.agents.profile import ProfileSearcher
from prunegym.agents.rl import RLSearcher
from prunegym.agents.searcher import Searcher
from prunegym.agents.selection import TOP_K
from prunegym.agents.transfer import TransferSearcher

#: Baseline searcher name -> class (the RL agents are the names of :data:`ALGOS`).
BASELINES: dict[str, type[Searcher]] = {
    "uniform": UniformSearcher,
    "random": RandomSearcher,
    "random-raw": RawRandomSearcher,
    "evolution": EvolutionSearcher,
    "profile": ProfileSearcher,  # option source: a run directory (prunegym.agents.profile)
    "transfer": TransferSearcher,  # option source: a saved agent (prunegym.agents.transfer)
    "cmaes": CMAESSearcher,
}

SEARCHERS: tuple[str, ...] = tuple(BASELINES) + tuple(ALGOS)
#: Searchers that start from a source run and need its ``source`` option.
SOURCED: tuple[str, ...] = ("profile", "transfer")


def make_searcher(
    name: str,
    env: gym.Env | None = None,
    seed: int = 0,
    select_top: int = TOP_K,
    **options: Any,
) -> Searcher:
    """A searcher by name: a baseline (``uniform``, ``random``, ``random-raw``,
    ``evolution``, ``cmaes``) or an RL agent (``ddpg``, ``td3``, ``sac``, ``ppo``;
    ``options`` go to :func:`make_agent`). ``select_top`` candidates are re-scored on
    the held-out slice at the end (0: answer by the search reward alone)."""
    if isinstance(select_top, bool) or not isinstance(select_top, int) or select_top < 0:
        raise ValueError(f"select_top must be an integer >= 0, got {select_top!r}")
    searcher: Searcher
    if name in BASELINES:
        cls = BASELINES[name]
        known = [p for p in inspect.signature(cls.__init__).parameters if p not in
                 ("self", "env", "seed")]  # fmt: skip
        for key in options:
            if key not in known:
                raise ValueError(f"searcher {name!r} has no option {key!r}; its options: "
                                 f"{', '.join([*known, 'select_top'])}")  # fmt: skip
        searcher = cls(env, seed=seed, **options)
    elif name in ALGOS:
        searcher = RLSearcher(env, seed=seed, algo=name, **options)
    else:
        raise ValueError(f"unknown searcher {name!r}; known: {', '.join(SEARCHERS)}")
    searcher.select_top = select_top
    return searcher
