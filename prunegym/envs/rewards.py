"""Episode rewards, a registry chosen by name. Each returns its value and its terms.

A reward reads the episode's metrics: ``accuracy`` (proxy top-1 on the reward split),
``dense_accuracy``, ``macs``, ``params``, ``macs_ratio`` and ``params_ratio`` (pruned
over dense). The terms go to the terminal ``info`` and to TensorBoard.

The budget is hard (the action wall), so a reward only has to rank candidates that all
fit in it. Which one fits:

============= ======================== =================== ============================
name          value                    scale               fits
============= ======================== =================== ============================
``retention`` ``acc / dense_acc``      1 = dense accuracy, any search under the wall
(default)                              on every model      (agents, noise, baselines and
                                                           transferred policies all see
                                                           one scale)
``accuracy``  ``acc``                  0..1; the dense     AMC's ``acc_reward`` (the
                                       accuracy differs    ``amc`` preset); ranks like
                                       per model/dataset   ``retention`` on one model
``amc``       ``-error * ln(MACs)``    -error x ln of the  reproducing AMC's accuracy-
                                       model's absolute    guaranteed runs; under the
                                       MACs (about 15 for  wall its compression term
                                       a digits CNN, 18    barely moves, and it counts
                                       for MobileNetV2)    MACs whatever the target
``tradeoff``  ``w_acc * retention +    retention plus      rewarding savings beyond the
              w_macs * (1 - MACs       weighted savings    budget (the wall only caps
              ratio) + w_params *                          them)
              (1 - params ratio)``
============= ======================== =================== ============================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

Metrics = Mapping[str, float]


@dataclass(frozen=True)
class RewardResult:
    """The scalar reward and the named terms it was made of."""

    value: float
    terms: Mapping[str, float]


@dataclass(frozen=True)
class Reward:
    """A named reward with its (validated) weights."""

    name: str
    fn: Callable[[Metrics, Mapping[str, float]], RewardResult]
    weights: Mapping[str, float] = field(default_factory=dict)

    def __call__(self, metrics: Metrics) -> RewardResult:
        return self.fn(metrics, self.weights)


def amc_reward(m: Metrics, _w: Mapping[str, float]) -> RewardResult:
    """AMC's ``-error * log(MACs)`` (error as a fraction, natural log of absolute MACs)."""
    error = 1.0 - m["accuracy"]
    log_macs = math.log(max(m["macs"], 1.0))
    return RewardResult(-error * log_macs, {"error": error, "log_macs": log_macs})


def _retention(m: Metrics) -> float:
    dense = m.get("dense_accuracy", 0.0)
    return m["accuracy"] / dense if dense > 0 else m["accuracy"]


def retention_reward(m: Metrics, _w: Mapping[str, float]) -> RewardResult:
    """Accuracy retention ``acc / dense_acc`` (the accuracy itself if the dense one is 0)."""
    retention = _retention(m)
    return RewardResult(retention, {"accuracy_retention": retention})


def accuracy_reward(m: Metrics, _w: Mapping[str, float]) -> RewardResult:
    """The proxy accuracy itself: the budget is hard (the wall), so only accuracy is scored."""
    return RewardResult(m["accuracy"], {"accuracy": m["accuracy"]})


def tradeoff_reward(m: Metrics, w: Mapping[str, float]) -> RewardResult:
    """``w_acc * acc / dense_acc + w_macs * (1 - macs_ratio) + w_params * (1 - params_ratio)``."""
    retention = _retention(m)
    terms = {
        "accuracy_retention": retention,
        "macs_reduction": 1.0 - m["macs_ratio"],
        "params_reduction": 1.0 - m["params_ratio"],
    }
    value = (
        w["accuracy"] * terms["accuracy_retention"]
        + w["macs"] * terms["macs_reduction"]
        + w["params"] * terms["params_reduction"]
    )
    return RewardResult(value, terms)


REWARDS: Mapping[str, tuple[Callable[[Metrics, Mapping[str, float]], RewardResult], dict]] = (
    MappingProxyType(
        {
            "retention": (retention_reward, {}),
            "amc": (amc_reward, {}),
            "accuracy": (accuracy_reward, {}),
            "tradeoff": (tradeoff_reward, {"accuracy": 1.0, "macs": 0.2, "params": 0.2}),
        }
    )
)
"""name -> (function, default weights)."""

DEFAULT_REWARD = "retention"


def make_reward(name: str, weights: Mapping[str, float] | None = None) -> Reward:
    """The reward ``name`` with ``weights`` overriding its defaults (unknown keys are errors)."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; known: {', '.join(REWARDS)}")
    fn, defaults = REWARDS[name]
    merged = dict(defaults)
    for key, value in (weights or {}).items():
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise ValueError(f"reward {name!r} has no weight {key!r} (its weights: {known})")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"reward weight {key!r} must be finite, got {value}")
        merged[key] = value
    return Reward(name, fn, MappingProxyType(merged))
