"""The Gymnasium pruning environment (imports no stable_baselines3).

Importing this package registers ``prunegym/ChannelPruning-v0`` and
``prunegym/WeightPruning-v0`` with Gymnasium (``import prunegym`` does too, lazily).
Searchers use only :mod:`prunegym.envs.contract`.
"""

from prunegym.envs.batchnorm import recalibrate_batchnorm
from prunegym.envs.contract import (
    GameDescription,
    PruningGame,
    ResetInfo,
    StepInfo,
    TerminalInfo,
    describe_game,
    game_of,
)
from prunegym.envs.env import ChannelPruningEnv, PruningEnv, WeightPruningEnv
from prunegym.envs.evaluator import (
    EvaluationError,
    Evaluator,
    ProxyResult,
    canonical_device,
    evaluator_from_data,
)
from prunegym.envs.factory import make_pruning_env
from prunegym.envs.latency import RealLatency
from prunegym.envs.latency_table import LatencyTable
from prunegym.envs.observation import FEATURE_NAMES, FEATURE_VERSION, FEATURES, OBSERVATION_SIZE
from prunegym.envs.rewards import REWARDS, Reward, RewardResult, make_reward
from prunegym.envs.scoring import NonFiniteOutputError, Score, score_batches
from prunegym.envs.synthetic import SyntheticPruningEnv
from prunegym.envs.targets import TARGETS, Target, make_target
from prunegym.envs.wall import ActionWall, UnreachableBudgetError
from prunegym.registration import CHANNEL_ENV_ID, ENV_IDS, WEIGHT_ENV_ID, register_envs

register_envs()

__all__ = [
    "CHANNEL_ENV_ID",
    "ENV_IDS",
    "FEATURES",
    "FEATURE_NAMES",
    "FEATURE_VERSION",
    "OBSERVATION_SIZE",
    "REWARDS",
    "TARGETS",
    "WEIGHT_ENV_ID",
    "ActionWall",
    "ChannelPruningEnv",
    "EvaluationError",
    "Evaluator",
    "GameDescription",
    "LatencyTable",
    "NonFiniteOutputError",
    "ProxyResult",
    "PruningEnv",
    "PruningGame",
    "RealLatency",
    "ResetInfo",
    "Reward",
    "RewardResult",
    "Score",
    "StepInfo",
    "SyntheticPruningEnv",
    "Target",
    "TerminalInfo",
    "UnreachableBudgetError",
    "WeightPruningEnv",
    "canonical_device",
    "describe_game",
    "evaluator_from_data",
    "game_of",
    "make_pruning_env",
    "make_reward",
    "make_target",
    "recalibrate_batchnorm",
    "register_envs",
    "score_batches",
]
