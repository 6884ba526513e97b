"""The Gymnasium pruning environment (imports no stable_baselines3).

Importing this package registers ``prunegym/ChannelPruning-v0`` and
``prunegym/WeightPruning-v0`` with Gymnasium.
"""

import gymnasium as gym

from prunegym.envs.env import (
    TARGETS,
    ChannelPruningEnv,
    PruningEnv,
    WeightPruningEnv,
    evaluator_from_data,
)
from prunegym.envs.evaluator import EvalResult, EvaluationError, Evaluator, recalibrate_batchnorm
from prunegym.envs.latency_table import LatencyTable
from prunegym.envs.observation import FEATURES, OBSERVATION_SIZE
from prunegym.envs.rewards import REWARDS, Reward, RewardResult, make_reward
from prunegym.envs.wall import ActionWall, UnreachableBudgetError

CHANNEL_ENV_ID = "prunegym/ChannelPruning-v0"
WEIGHT_ENV_ID = "prunegym/WeightPruning-v0"
ENV_IDS = (CHANNEL_ENV_ID, WEIGHT_ENV_ID)


def register_envs() -> None:
    """Register the environment ids with Gymnasium (idempotent)."""
    entry = {
        CHANNEL_ENV_ID: "prunegym.envs.env:ChannelPruningEnv",
        WEIGHT_ENV_ID: "prunegym.envs.env:WeightPruningEnv",
    }
    for env_id, entry_point in entry.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


register_envs()

__all__ = [
    "CHANNEL_ENV_ID",
    "ENV_IDS",
    "FEATURES",
    "OBSERVATION_SIZE",
    "REWARDS",
    "TARGETS",
    "WEIGHT_ENV_ID",
    "ActionWall",
    "ChannelPruningEnv",
    "EvalResult",
    "EvaluationError",
    "Evaluator",
    "LatencyTable",
    "PruningEnv",
    "Reward",
    "RewardResult",
    "UnreachableBudgetError",
    "WeightPruningEnv",
    "evaluator_from_data",
    "make_reward",
    "recalibrate_batchnorm",
    "register_envs",
]
