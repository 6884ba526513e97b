"""The observation: a fixed-length float32 vector in [0, 1], the same for every model.

Every feature is normalised by a model-independent rule (a log scale with a fixed
ceiling, a share of the dense model's total, or a ratio to the model's mean unit),
never by per-model min-max, so an agent trained on one network sees the same meaning on
another. The list is versioned (:data:`FEATURE_VERSION`): a saved agent records it and
cannot be used on a game that observes anything else.

Version 2 (for transferring agents between models): ``is_conv`` is gone (it was
``1 - is_depthwise - is_linear``, no information of its own); ``coupled_layers`` tells a
residual group (several layers losing the same channels) from a plain layer, which its
root layer's shape alone does not; ``relative_macs`` is the unit's size against the
model's average unit, which does not shrink with depth as the shares of the total do.
"""

from __future__ import annotations

import math

import numpy as np

from prunegym.envs.targets import Target
from prunegym.pruners import LayerTable

#: Bumped whenever a feature is added, removed, reordered or changes its meaning.
FEATURE_VERSION = 2

# (name, meaning). The order is the vector's order.
FEATURES: tuple[tuple[str, str], ...] = (
    ("position", "unit index / (units - 1): 0 for the first unit, 1 for the last"),
    ("is_depthwise", "1 if the unit's root layer is a depthwise convolution"),
    ("is_linear", "1 if it is a linear layer (0 for both: a regular convolution)"),
    ("in_channels", "log2(1 + input channels) / log2(1 + 8192), clipped"),
    ("out_channels", "log2(1 + output channels) / log2(1 + 8192), clipped"),
    ("kernel", "log2(largest kernel side) / 4 (1 -> 0, 3 -> 0.40, 7 -> 0.70, 16 -> 1), clipped"),
    ("stride", "log2(largest stride) / 3 (1 -> 0, 2 -> 0.33, 8 -> 1), clipped"),
    ("feature_map", "log2(output positions, H*W) / 20, clipped (1x1 -> 0, 1024x1024 -> 1)"),
    (
        "coupled_layers",
        "log2(conv/linear layers whose outputs the unit removes) / 6, clipped "
        "(a plain layer -> 0, a residual group of 4 -> 0.33, 64 or more -> 1)",
    ),
    ("macs_share", "MACs of the layers whose outputs the unit removes / dense total MACs"),
    ("consumer_macs_share", "MACs of the layers that consume the unit's channels / total MACs"),
    ("params_share", "params of the unit's layers and its consumers / dense total params"),
    (
        "relative_macs",
        "the unit's MACs (own + consumers) / the mean unit's, as log2(1 + x) / "
        "log2(17), clipped (an average unit -> 0.24, 16 times the average -> 1)",
    ),
    ("macs_removed", "MACs already removed by the decided units / dense total MACs"),
    ("params_removed", "params already removed by the decided units / dense total params"),
    ("macs_rest", "MACs the units after this one can still remove (all at max_sparsity) / total"),
    ("target_ratio", "the budget: fraction of the dense target metric the result may keep"),
    ("to_remove", "target metric still to remove to meet the budget / dense target metric"),
    ("min_allowed", "the smallest sparsity the action wall lets this unit take"),
    ("previous_sparsity", "the (walled) sparsity applied to the previous unit; 0 at the start"),
)
#: The feature names in the vector's order (recorded beside a saved agent).
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FEATURES)
OBSERVATION_SIZE = len(FEATURES)


def _log_scale(x: float, ceiling: float) -> float:
    return min(max(math.log2(1.0 + x) / math.log2(1.0 + ceiling), 0.0), 1.0)


def static_features(table: LayerTable) -> np.ndarray:
    """The per-unit features that do not change during an episode, shape ``(units, 13)``."""
    total = table.total
    n = len(table)
    layers = {lay.name for lay in table.layers}
    unit_macs = np.array([u.macs + u.consumer_macs for u in table], dtype=np.float64)
    mean_macs = max(float(unit_macs.mean()), 1e-12)
    rows = []
    for u, macs in zip(table, unit_macs, strict=True):
        kernel = max(u.kernel) if u.kernel else 1
        stride = max(u.stride) if u.stride else 1
        positions = math.prod(u.feature_map) if u.feature_map else 1
        coupled = len({m.name for m in u.members if m.direction == "out" and m.name in layers})
        rows.append(
            [
                u.index / max(n - 1, 1),
                float(u.kind == "depthwise"),
                float(u.kind == "linear"),
                _log_scale(u.in_channels, 8192),
                _log_scale(u.out_channels, 8192),
                min(math.log2(max(kernel, 1)) / 4.0, 1.0),
                min(math.log2(max(stride, 1)) / 3.0, 1.0),
                min(math.log2(max(positions, 1)) / 20.0, 1.0),
                min(math.log2(max(coupled, 1)) / 6.0, 1.0),
                u.macs / max(total.macs, 1),
                u.consumer_macs / max(total.macs, 1),
                (u.params + u.consumer_params) / max(total.params, 1),
                _log_scale(macs / mean_macs, 16),
            ]
        )
    return np.clip(np.array(rows, dtype=np.float64), 0.0, 1.0)


class ObservationBuilder:
    """Builds the observation of unit ``t`` from the episode's state."""

    def __init__(self, table: LayerTable, target: Target, kept_min: np.ndarray) -> None:
        self.table = table
        self.static = static_features(table)
        self.target = target
        self.total = table.total
        self.kept_min = kept_min

    def __call__(
        self, t: int, kept: np.ndarray, min_allowed: float, previous_sparsity: float
    ) -> np.ndarray:
        """``kept``: decided counts for units ``< t``, dense counts for the others."""
        n = len(self.table)
        unit = min(t, n - 1)
        now = self.table.cost_of_kept(kept)
        later = kept.copy()
        later[unit + 1 :] = self.kept_min[unit + 1 :]
        rest = now.macs - self.table.cost_of_kept(later).macs
        tot_m, tot_p = max(self.total.macs, 1), max(self.total.params, 1)
        goal = self.target
        to_remove = max(goal.cost(kept) - goal.budget, 0.0) / max(goal.dense_cost, 1e-12)
        dynamic = [
            1.0 - now.macs / tot_m,
            1.0 - now.params / tot_p,
            rest / tot_m,
            goal.ratio,
            to_remove,
            min_allowed,
            previous_sparsity,
        ]
        obs = np.concatenate([self.static[unit], np.asarray(dynamic, dtype=np.float64)])
        if t >= n:
            obs[0] = 1.0
        return np.clip(obs, 0.0, 1.0).astype(np.float32)
