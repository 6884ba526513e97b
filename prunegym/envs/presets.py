"""Named sets of env settings: the defaults, and ``amc`` (the AMC reference's choices).

An argument the caller gives always wins; the preset fills the ones left out, and the
defaults fill the rest. ``amc`` follows the reference code (mit-han-lab/amc,
``amc_search.py`` and ``env/channel_pruning_env.py``):

- channels ranked by the consumer's input-channel weight magnitude (``consumer_l1``:
  ``|W|.sum((0, 2, 3))`` of the layer reading them);
- least-squares reconstruction of the consumer on the kept channels, from 10 sampled
  positions per image of 60 calibration batches of 50 training images
  (``n_calibration_batches``, ``n_points_per_layer``, ``data_bsize``);
- reward = accuracy (``acc_reward``), no batch-norm recalibration;
- bounds: keep at least 20% of a unit (``lbound=0.2``: ``max_sparsity=0.8``), prune
  nothing at most (``rbound=1``: ``min_sparsity=0``); kept channels rounded up to
  multiples of 8 (``channel_round``).

Differences that remain: the budget is ours (the action wall works on the rounded
counts, so every episode ends inside the budget; the reference clips before rounding
and most of its episodes end over it); actions map to the levels the wall allows (the
reference maps [0, 1] to a keep ratio, then clips); a unit is a dependency group (the
coupled channels of a residual stage are one decision; the reference prunes layer
inputs and shares indices only for MobileNetV2); the proxy is top-1 accuracy (the
reference's default metric is top-5); every layer kind is refitted by the normal
equations, not only 1x1 convolutions and linear layers; observations are prunegym's
model-independent features, not the reference's per-model min-max.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from prunegym.envs.rewards import DEFAULT_REWARD

#: The settings of every env unless given or set by a preset. ``reconstruction=None``
#: means on wherever a train split gives calibration data (channel pruning only).
DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "min_sparsity": 0.0,
        "max_sparsity": 0.8,
        "importance": "l1",
        "round_to": None,
        "reward": DEFAULT_REWARD,
        "reconstruction": None,
        "evaluator_options": {},
    }
)

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "amc": MappingProxyType(
            {
                "min_sparsity": 0.0,
                "max_sparsity": 0.8,
                "importance": "consumer_l1",
                "round_to": 8,
                "reward": "accuracy",
                "reconstruction": True,
                "evaluator_options": {
                    "bn_recalibration": False,
                    "bn_batches": 60,
                    "bn_batch_size": 50,
                },
            }
        ),
    }
)
"""preset name -> the settings it chooses (keys of :data:`DEFAULTS`)."""


def resolve_settings(preset: str | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """The env settings: ``given`` (values that are not None), then ``preset``'s, then
    :data:`DEFAULTS`. ``evaluator_options`` merge key by key, the caller's winning."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    chosen = PRESETS[preset] if preset is not None else {}
    out: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        value = given.get(key)
        out[key] = value if value is not None else chosen.get(key, default)
    out["evaluator_options"] = {
        **dict(chosen.get("evaluator_options", {})),
        **dict(given.get("evaluator_options") or {}),
    }
    return out
