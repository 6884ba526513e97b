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
from prunegym.agents.metadata import (
    IncompatibleAgentError,
    LoadedAgent,
    RunMetadataCallback,
    check_agent,
    load_agent,
    read_metadata,
    save_agent,
)
from prunegym.agents.multimodel import GeneralistRun, MultiModelEnv, train_generalist
from prunegym.agents.noise import TruncatedNormalNoise
from prunegym.agents.profile import ProfileSearcher
from prunegym.agents.results import EpisodeRecord, SearchResult
from prunegym.agents.rl import RLSearcher
from prunegym.agents.searcher import Searcher
from prunegym.agents.searchers import BASELINES, SEARCHERS, make_searcher
from prunegym.agents.transfer import TransferResult, TransferSearcher, transfer

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
    "GeneralistRun",
    "IncompatibleAgentError",
    "LoadedAgent",
    "MultiModelEnv",
    "ProfileSearcher",
    "ProgressBarCallback",
    "RLSearcher",
    "RandomSearcher",
    "RawRandomSearcher",
    "RunMetadataCallback",
    "SearchCallback",
    "SearchResult",
    "Searcher",
    "TensorBoardCallback",
    "TransferResult",
    "TransferSearcher",
    "TruncatedNormalNoise",
    "UniformSearcher",
    "check_agent",
    "fill_budget",
    "load_agent",
    "make_agent",
    "make_searcher",
    "play_episode",
    "read_metadata",
    "save_agent",
    "train_generalist",
    "transfer",
    "uniform_sparsity",
]
