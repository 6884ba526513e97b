"""Agents and searchers that play the pruning environment (SB3 agents with AMC's
exploration, baseline searchers with the same interface and episode budget).

They know the environment only through :mod:`prunegym.envs.contract`.
"""

from prunegym.agents.baselines import (
    EvolutionSearcher,
    RandomSearcher,
    RawRandomSearcher,
    UniformSearcher,
)
from prunegym.agents.buffers import EpisodeCreditReplayBuffer
from prunegym.agents.callbacks import (
    BestPolicyCallback,
    CheckpointCallback,
    ProgressBarCallback,
    SearchCallback,
    TensorBoardCallback,
)
from prunegym.agents.checkpoint import CheckpointError
from prunegym.agents.cmaes import CMAESSearcher
from prunegym.agents.episodes import fill_budget, play_episode, uniform_sparsity
from prunegym.agents.factory import ALGOS, AMC_DDPG, AMC_NOISE, make_agent
from prunegym.agents.noise import TruncatedNormalNoise
from prunegym.agents.results import EpisodeRecord, SearchResult
from prunegym.agents.rl import RLSearcher
from prunegym.agents.searcher import Searcher
from prunegym.agents.searchers import BASELINES, SEARCHERS, make_searcher

__all__ = [
    "ALGOS",
    "AMC_DDPG",
    "AMC_NOISE",
    "BASELINES",
    "SEARCHERS",
    "BestPolicyCallback",
    "CMAESSearcher",
    "CheckpointCallback",
    "CheckpointError",
    "EpisodeCreditReplayBuffer",
    "EpisodeRecord",
    "EvolutionSearcher",
    "ProgressBarCallback",
    "RLSearcher",
    "RandomSearcher",
    "RawRandomSearcher",
    "SearchCallback",
    "SearchResult",
    "Searcher",
    "TensorBoardCallback",
    "TruncatedNormalNoise",
    "UniformSearcher",
    "fill_budget",
    "make_agent",
    "make_searcher",
    "play_episode",
    "uniform_sparsity",
]
