"""Agents and searchers that play the pruning environment (SB3 agents with AMC's
exploration, baseline searchers with the same interface and episode budget)."""

from prunegym.agents.buffers import EpisodeCreditReplayBuffer
from prunegym.agents.callbacks import (
    BestPolicyCallback,
    CheckpointCallback,
    ProgressBarCallback,
    SearchCallback,
    TensorBoardCallback,
)
from prunegym.agents.factory import ALGOS, AMC_DDPG, make_agent
from prunegym.agents.noise import TruncatedNormalNoise
from prunegym.agents.results import EpisodeRecord, SearchResult
from prunegym.agents.searchers import (
    BASELINES,
    SEARCHERS,
    CheckpointError,
    EvolutionSearcher,
    RandomSearcher,
    RLSearcher,
    Searcher,
    UniformSearcher,
    make_searcher,
)
from prunegym.agents.synthetic import SyntheticPruningEnv

__all__ = [
    "ALGOS",
    "AMC_DDPG",
    "BASELINES",
    "SEARCHERS",
    "BestPolicyCallback",
    "CheckpointCallback",
    "CheckpointError",
    "EpisodeCreditReplayBuffer",
    "EpisodeRecord",
    "EvolutionSearcher",
    "ProgressBarCallback",
    "RLSearcher",
    "RandomSearcher",
    "SearchCallback",
    "SearchResult",
    "Searcher",
    "SyntheticPruningEnv",
    "TensorBoardCallback",
    "TruncatedNormalNoise",
    "UniformSearcher",
    "make_agent",
    "make_searcher",
]
