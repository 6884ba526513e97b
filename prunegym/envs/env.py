"""PruningEnv: the model being compressed as a Gymnasium environment (AMC)."""

from __future__ import annotations

import copy
import math
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from prunegym.envs.evaluator import EvalResult, EvaluationError, Evaluator
from prunegym.envs.latency_table import LatencyTable
from prunegym.envs.observation import FEATURES, OBSERVATION_SIZE, ObservationBuilder
from prunegym.envs.rewards import make_reward
from prunegym.envs.wall import ActionWall
from prunegym.pruners import (
    ChannelPruner,
    LayerTable,
    PruningPolicy,
    Reconstructor,
    WeightPruner,
)
from prunegym.pruners import measure_latency as time_model

TARGETS = ("macs", "params", "latency")
_LATENCY_KEYS = {"levels", "threads", "warmup", "repeats", "dense_repeats", "batch_size"}


def _feature_doc() -> str:
    return "\n".join(f"    | {i:>2} | {name} | {meaning} |" for i, (name, meaning) in
                     enumerate(FEATURES))  # fmt: skip


class PruningEnv(gym.Env[np.ndarray, np.ndarray]):
    """Choose, unit by unit, how much of a trained network to prune.

    ## Description
    The model being compressed is the environment (AMC, He et al. 2018). An episode walks
    the prunable units of the model's :class:`~prunegym.pruners.LayerTable` in execution
    order (a channel unit is a dependency group: the coupled channels of a residual stage
    are one unit; a weight unit is one conv/linear weight); each step chooses one unit's
    sparsity. After the last unit the whole policy is applied to a private copy of the
    model (the caller's model is never touched) and scored on the reward split by the
    :class:`~prunegym.envs.Evaluator`. The budget is hard: an action wall keeps every
    episode inside it.

    ## Action Space
    ``Box(-1, 1, (1,), float32)``, mapped linearly to a sparsity (fraction of the unit's
    channels or weights to remove) in ``[min_sparsity, max_sparsity]``; out-of-range
    actions are clipped, non-finite ones are errors. The sparsity is then clipped by the
    action wall: the unit keeps at most as many channels as still lets the target be met
    if every later unit went to ``max_sparsity``. The wall works on the kept counts after
    rounding (channels round up to multiples of ``round_to``), so every episode ends with
    ``cost <= ratio * dense cost`` exactly (MACs and params: integers, no tolerance).

    ## Observation Space
    ``Box(0, 1, (19,), float32)``, the same length and meaning for every model; features
    are log scales with fixed ceilings or shares of the dense model's totals (never a
    per-model min-max), so an agent trained on one network can act on another:

    |  # | feature | meaning |
    |----|---------|---------|
    {features}

    ## Rewards
    0 on every step but the last. At the last step, the named reward (``amc``:
    ``-error * ln(MACs)``; ``accuracy``: the proxy accuracy under the hard budget;
    ``tradeoff``: ``w_acc * acc / dense_acc + w_macs * (1 - MACs ratio) + w_params *
    (1 - params ratio)``, weights via ``reward_weights``), computed from the evaluator's
    proxy accuracy. Its terms are in ``info["reward_terms"]``.

    ## Starting State
    ``reset(seed=...)`` restores the unpruned state: no unit decided, the first unit
    observed. The environment itself draws no random numbers.

    ## Episode End
    ``terminated`` is True after the step of the last unit (episode length = number of
    units); there is no truncation. The terminal ``info`` holds ``policy`` (a
    :class:`~prunegym.pruners.PruningPolicy` with the walled sparsities),
    ``accuracy``, ``macs_ratio``, ``params_ratio`` (and ``latency_ratio``) at the top level,
    ``requested_sparsities``, ``sparsities``, ``kept_counts``, ``metrics`` (accuracy,
    loss, dense_accuracy, macs, params, their ratios, achieved target ratio, latency
    figures for the latency target), ``reward`` and ``reward_terms``, ``target``,
    ``evaluation`` (route, cache hit) and ``seconds`` (time spent: ``episode``, ``steps``,
    ``evaluation`` and its ``evaluation_prune``/``_bn``/``_forward`` parts, ``latency``).

    ## Arguments
    ``model`` (a trained ``nn.Module``), ``data`` (an object with ``reward_val`` and
    ``train`` Datasets, e.g. ``prunegym.experiments.build_data(...)``, or tensors
    ``(x, y)`` of reward images) or ``evaluator`` (an :class:`Evaluator`); ``target``
    (``macs``, ``params`` or ``latency``) and ``ratio`` in (0, 1] (the fraction of the
    dense cost the result may keep); ``min_sparsity``/``max_sparsity``; ``importance``;
    ``round_to`` (channel rounding, default 8; 1 for weights); ``reward`` and
    ``reward_weights``; ``evaluator_options`` (keyword arguments of :class:`Evaluator`);
    ``reconstruction`` (AMC's least-squares refit on the calibration batches);
    ``latency_options`` (``levels``, ``threads``, ``warmup``, ``repeats``,
    ``dense_repeats``, ``batch_size``) and ``measure_latency`` (measure the final
    policy's real latency; default on for the latency target); ``example_input``,
    ``ignored`` layers, ``device``, ``seed`` (channel ranking and evaluation subset).

    Searchers drive the environment by actions: ``n_units``, ``table``, ``target_ratio``,
    ``sparsity_for_action(a)``, ``action_for_sparsity(s, unit)`` (exact through rounding;
    aliases ``action_to_sparsity``/``sparsity_to_action``),
    ``cost_ratio(sparsities)`` (no model touched) and ``play(sparsities)`` (one whole
    episode, returns ``(reward, terminal info)``) are there for them.

    The latency target uses a per-layer latency lookup measured once on the current
    device (:class:`~prunegym.envs.latency_table.LatencyTable`): an approximation, so the
    final policy's real latency is measured and reported in ``info["metrics"]``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        model: nn.Module,
        data: Any = None,
        *,
        evaluator: Evaluator | None = None,
        granularity: str = "channel",
        target: str = "macs",
        ratio: float = 0.5,
        min_sparsity: float = 0.0,
        max_sparsity: float = 0.8,
        importance: str = "l1",
        round_to: int | None = None,
        reward: str = "amc",
        reward_weights: Mapping[str, float] | None = None,
        evaluator_options: Mapping[str, Any] | None = None,
        reconstruction: bool = False,
        latency_options: Mapping[str, Any] | None = None,
        measure_latency: bool | None = None,
        example_input: torch.Tensor | None = None,
        ignored: Iterable[str] = (),
        device: str | torch.device = "cpu",
        seed: int = 0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch nn.Module, got {type(model).__name__}")
        if granularity not in ("channel", "weight"):
            raise ValueError(f"granularity must be 'channel' or 'weight', got {granularity!r}")
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
        self.ratio = _check_ratio(ratio)
        self.min_sparsity, self.max_sparsity = _check_bounds(min_sparsity, max_sparsity)
        if render_mode is not None:
            raise ValueError(
                f"PruningEnv renders nothing; render_mode must be None, got {render_mode!r}"
            )
        if granularity == "weight":
            if round_to not in (None, 1):
                raise ValueError(
                    f"weight pruning does not round; round_to must be 1, got {round_to}"
                )
            if target == "latency":
                raise ValueError("a latency target needs channel pruning: unstructured sparsity "
                                 "does not make dense kernels faster")  # fmt: skip
            round_to = 1
        elif round_to is None:
            round_to = 8
        if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
            raise ValueError(f"round_to must be a positive integer, got {round_to!r}")
        self.render_mode = render_mode
        self.granularity = granularity
        self.target = target
        self.importance = importance
        self.round_to = round_to
        self.device = torch.device(device)
        self.reward_fn = make_reward(reward, reward_weights)

        # evaluator and data --------------------------------------------------------
        if evaluator is not None:
            if evaluator_options:
                raise ValueError("evaluator_options apply only when the env builds the evaluator")
            if evaluator.device != self.device:
                raise ValueError(f"the evaluator's data is on {evaluator.device}, the env's "
                                 f"device is {self.device}")  # fmt: skip
            self.evaluator = evaluator
        elif data is None:
            raise ValueError("PruningEnv needs data=... (with a reward_val split) or evaluator=...")
        else:
            self.evaluator = evaluator_from_data(
                data, **{"device": device, "seed": seed, **dict(evaluator_options or {})}
            )
        if example_input is None:
            example_input = getattr(data, "example_input", None)
        if example_input is None:
            example_input = self.evaluator.example_input
        self.example_input = torch.as_tensor(example_input).to(self.device)

        # the private model, its units and the pruner --------------------------------
        self.model = copy.deepcopy(model).to(self.device).eval()  # the caller's stays as is
        self.table = LayerTable.from_model(self.model, self.example_input, granularity,
                                           ignored=tuple(ignored))  # fmt: skip
        self.pruner: ChannelPruner | WeightPruner
        if granularity == "weight":
            if reconstruction:
                raise ValueError("reconstruction applies to channel pruning only")
            self.pruner = WeightPruner(self.model, self.table, importance=importance)
        else:
            recon = None
            if reconstruction:
                batches = self.evaluator.calibration_inputs()
                if not batches:
                    raise ValueError("reconstruction needs calibration data (a train split)")
                recon = Reconstructor(self.model, self.table, batches, seed=seed)
            self.pruner = ChannelPruner(
                self.model, self.table, importance=importance, round_to=round_to,
                example_input=self.example_input, calibration=self.evaluator.calibration_pair(),
                seed=seed, reconstruction=recon,
            )  # fmt: skip

        # the target: cost function, budget, wall -----------------------------------
        total = self.table.total
        self.latency_table: LatencyTable | None = None
        lat = dict(latency_options or {})
        unknown = sorted(set(lat) - _LATENCY_KEYS)
        if unknown:
            raise ValueError(f"unknown latency option(s) {unknown}; known: {sorted(_LATENCY_KEYS)}")
        batch = int(lat.pop("batch_size", 1))
        self.latency_input = self.example_input[:1].repeat(
            batch, *[1] * (self.example_input.dim() - 1)
        )
        self._latency_settings = {k: lat[k] for k in ("threads", "warmup") if k in lat}
        self._latency_settings["repeats"] = int(lat.get("dense_repeats", 30))
        self.measure_final_latency = (target == "latency") if measure_latency is None else bool(
            measure_latency
        )  # fmt: skip
        if self.measure_final_latency and granularity == "weight":
            raise ValueError("measure_latency needs channel pruning")
        if target == "latency":
            self.latency_table = LatencyTable(self.model, self.table, self.latency_input, **lat)
            lt = self.latency_table
            self.dense_cost: float = lt.dense_ms
            self.budget: float = self.ratio * lt.dense_ms
            self._cost = lt.estimate
        else:
            self.dense_cost = float(total.macs if target == "macs" else total.params)
            self.budget = math.floor(Fraction(self.ratio) * int(self.dense_cost))
            attr = target
            self._cost = lambda kept: getattr(self.table.cost_of_kept(kept), attr)
        self.wall = ActionWall(self.table, self._cost, self.budget, self.dense_cost,
                               self.min_sparsity, self.max_sparsity, round_to, target)  # fmt: skip
        self._obs = ObservationBuilder(self.table, self._cost, self.dense_cost, self.budget,
                                       self.ratio, self.wall.kept_min)  # fmt: skip

        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (OBSERVATION_SIZE,), np.float32)
        self._dense_result: EvalResult | None = None
        self._dense_latency_ms: float | None = None
        self._latency_cache: dict[tuple[int, ...], float] = {}
        self._t: int | None = None

    # helpers for agents and searchers ------------------------------------------------
    @property
    def n_units(self) -> int:
        """Episode length: one step per unit."""
        return len(self.table)

    @property
    def target_ratio(self) -> float:
        """The budget: the fraction of the dense target metric the result may keep."""
        return self.ratio

    def sparsity_for_action(self, action: Any) -> float:
        """The sparsity (before the wall) that ``action`` in [-1, 1] asks for."""
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        return self.min_sparsity + (a + 1.0) / 2.0 * (self.max_sparsity - self.min_sparsity)

    def action_for_sparsity(self, sparsity: float, unit: int | None = None) -> float:
        """The action (a float32 value) that asks for ``sparsity`` (clipped to the bounds).

        With ``unit``, the action is nudged so that it yields exactly the kept count
        ``sparsity`` yields for that unit (rounding boundaries survive float32).
        """
        span = self.max_sparsity - self.min_sparsity
        s = min(max(float(sparsity), self.min_sparsity), self.max_sparsity)
        a = np.float32(-1.0 if span == 0 else np.clip(2.0 * (s - self.min_sparsity) / span - 1.0,
                                                       -1.0, 1.0))  # fmt: skip
        if unit is not None:
            want = self.wall.kept_one(unit, s)
            for direction in (np.float32(1.0), np.float32(-1.0)):
                b = a
                for _ in range(64):
                    if self.wall.kept_one(unit, self.sparsity_for_action(b)) == want:
                        return float(b)
                    b = np.nextafter(b, direction, dtype=np.float32)
        return float(a)

    # the names SyntheticPruningEnv uses
    action_to_sparsity = sparsity_for_action
    sparsity_to_action = action_for_sparsity

    def cost_ratio(self, sparsities: Any) -> float:
        """The target metric of ``sparsities`` (one per unit, after rounding) over dense.

        No wall is applied; an episode asking for these sparsities ends unclipped when
        this is ``<= target_ratio``.
        """
        kept = self.wall.kept(np.asarray(sparsities, dtype=np.float64).reshape(-1))
        return float(self._cost(kept)) / self.dense_cost

    def play(self, sparsities: Sequence[float], seed: int | None = None) -> tuple[float, dict]:
        """Run one whole episode asking for ``sparsities`` (one per unit): (reward, info)."""
        if len(sparsities) != self.n_units:
            raise ValueError(
                f"expected {self.n_units} sparsities (one per unit), got {len(sparsities)}"
            )
        self.reset(seed=seed)
        reward, info = 0.0, {}
        for t, s in enumerate(sparsities):
            action = np.array([self.action_for_sparsity(s, t)], dtype=np.float32)
            _, reward, _, _, info = self.step(action)
        return float(reward), info

    # gymnasium API ------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._episode_start = time.perf_counter()
        self._step_seconds = 0.0
        self._t = 0
        self._kept = self.table.channels.copy()  # undecided units count as dense
        self._requested = np.zeros(self.n_units)
        self._sparsity = np.zeros(self.n_units)
        self._previous = 0.0
        self._allowed = self.wall.allowed_kept(0, self._kept)
        info = {"unit": self.table.names[0], "index": 0, "n_units": self.n_units}
        return self._observe(), info

    def _observe(self) -> np.ndarray:
        t = self._t if self._t is not None else 0
        floor = self.wall.min_sparsity_for(t, self._allowed) if t < self.n_units else 0.0
        return self._obs(t, self._kept, floor, self._previous)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        start = time.perf_counter()
        if self._t is None or self._t >= self.n_units:
            raise RuntimeError("the episode is over (or never started); call reset() first")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != 1:
            raise ValueError(f"the action must hold one value, got shape {np.shape(action)}")
        if not np.isfinite(a[0]):
            raise ValueError(f"the action must be finite, got {a[0]}")
        t = self._t
        requested = self.sparsity_for_action(a)
        sparsity, kept = self.wall.clip(t, requested, self._allowed)
        asked = self.wall.kept_one(t, requested)
        self._requested[t], self._sparsity[t], self._kept[t] = requested, sparsity, kept
        self._previous = sparsity
        self._t = t + 1
        info: dict[str, Any] = {
            "unit": self.table.names[t], "index": t, "requested_sparsity": requested,
            "sparsity": sparsity, "kept": kept, "clipped": kept < asked,
        }  # fmt: skip
        if self._t < self.n_units:
            self._allowed = self.wall.allowed_kept(self._t, self._kept)
            obs = self._observe()
            self._step_seconds += time.perf_counter() - start
            return obs, 0.0, False, False, info
        self._step_seconds += time.perf_counter() - start
        reward, final = self._finish()
        info.update(final)
        return self._observe(), reward, True, False, info

    def _finish(self) -> tuple[float, dict[str, Any]]:
        policy = PruningPolicy.from_array(
            self.table, self._sparsity, importance=self.importance, round_to=self.round_to,
            meta={"target": self.target, "ratio": self.ratio},
        )  # fmt: skip
        kept = self._kept.copy()
        if not np.array_equal(
            self.table.kept_counts(policy.as_array(self.table), self.round_to), kept
        ):
            raise RuntimeError("the policy's kept counts differ from the wall's (internal)")
        achieved = float(self._cost(kept))
        if achieved > self.budget:
            raise RuntimeError(f"episode ended over budget: {achieved} > {self.budget} (internal)")
        seconds: dict[str, float] = {"steps": self._step_seconds}
        if self._dense_result is None:
            self._dense_result = self.evaluator.evaluate_model(self.model)
            seconds["dense_evaluation"] = self._dense_result.seconds
        result = self.evaluator.evaluate(self.pruner, policy)
        seconds["evaluation"] = result.seconds
        seconds.update({f"evaluation_{k}": v for k, v in result.timings.items()})
        cost = self.table.cost_of_kept(kept)
        total = self.table.total
        metrics: dict[str, float] = {
            "accuracy": result.accuracy,
            "loss": result.loss,
            "dense_accuracy": self._dense_result.accuracy,
            "macs": float(cost.macs),
            "params": float(cost.params),
            "macs_ratio": cost.macs / total.macs,
            "params_ratio": cost.params / total.params,
            "achieved_ratio": achieved / self.dense_cost,
            "eval_samples": float(result.samples),
        }
        if self.latency_table is not None:
            metrics["latency_estimate_ms"] = achieved
        if self.measure_final_latency:
            t0 = time.perf_counter()
            metrics.update(self._real_latency(policy, kept))
            seconds["latency"] = time.perf_counter() - t0
        outcome = self.reward_fn(metrics)
        reward = float(outcome.value)
        if not math.isfinite(reward):
            raise EvaluationError(f"the {self.reward_fn.name} reward is {reward}; policy: "
                                  f"{policy.to_json()}", policy)  # fmt: skip
        seconds["episode"] = time.perf_counter() - self._episode_start
        mirrored = ("accuracy", "macs_ratio", "params_ratio", "latency_ratio")
        return reward, {
            **{k: metrics[k] for k in mirrored if k in metrics},
            "policy": policy,
            "requested_sparsities": self._requested.tolist(),
            "sparsities": self._sparsity.tolist(),
            "kept_counts": kept.tolist(),
            "metrics": metrics,
            "reward": reward,
            "reward_name": self.reward_fn.name,
            "reward_terms": dict(outcome.terms),
            "target": {
                "kind": self.target,
                "ratio": self.ratio,
                "budget": self.budget,
                "achieved": achieved,
            },
            "evaluation": {"mode": result.mode, "cached": result.cached},
            "seconds": seconds,
        }

    def _real_latency(self, policy: PruningPolicy, kept: np.ndarray) -> dict[str, float]:
        assert isinstance(self.pruner, ChannelPruner)
        if self._dense_latency_ms is None:
            self._dense_latency_ms = (
                self.latency_table.dense_ms if self.latency_table is not None
                else time_model(self.model, self.latency_input,
                                **self._latency_settings).median_ms
            )  # fmt: skip
        key = tuple(int(k) for k in kept)
        if key not in self._latency_cache:
            small = self.pruner.apply(policy)
            self._latency_cache[key] = time_model(
                small, self.latency_input, **self._latency_settings
            ).median_ms
        ms = self._latency_cache[key]
        return {"latency_ms": ms, "dense_latency_ms": self._dense_latency_ms,
                "latency_ratio": ms / self._dense_latency_ms}  # fmt: skip


PruningEnv.__doc__ = (PruningEnv.__doc__ or "").replace("    {features}", _feature_doc())


class ChannelPruningEnv(PruningEnv):
    """``prunegym/ChannelPruning-v0``: structured channel pruning (see :class:`PruningEnv`)."""

    def __init__(self, model: nn.Module, data: Any = None, **kwargs: Any) -> None:
        if kwargs.pop("granularity", "channel") != "channel":
            raise ValueError("ChannelPruning-v0 prunes channels; use WeightPruning-v0 for weights")
        super().__init__(model, data, granularity="channel", **kwargs)


class WeightPruningEnv(PruningEnv):
    """``prunegym/WeightPruning-v0``: unstructured magnitude pruning (see :class:`PruningEnv`)."""

    def __init__(self, model: nn.Module, data: Any = None, **kwargs: Any) -> None:
        if kwargs.pop("granularity", "weight") != "weight":
            raise ValueError("WeightPruning-v0 prunes weights; use ChannelPruning-v0 for channels")
        super().__init__(model, data, granularity="weight", **kwargs)


def evaluator_from_data(data: Any, **options: Any) -> Evaluator:
    """An :class:`Evaluator` on ``data.reward_val`` with calibration from the train split.

    ``data`` is any object with a ``reward_val`` Dataset (and optionally ``train``; an
    un-augmented ``plain("train")`` is preferred), or a tuple of tensors ``(x, y)`` of
    reward images (then there is no calibration data). The test split is never read.
    """
    if isinstance(data, (tuple, list)):
        return Evaluator(data, **options)
    reward_val = getattr(data, "reward_val", None)
    if reward_val is None:
        raise ValueError(
            f"data must have a reward_val split (or be tensors (x, y)); got {type(data).__name__}"
        )
    calibration = None
    if callable(getattr(data, "plain", None)):
        calibration = data.plain("train")
    elif getattr(data, "train", None) is not None:
        calibration = data.train
    return Evaluator(reward_val, calibration, **options)


def _check_ratio(ratio: Any) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise ValueError(f"the target ratio must be a number in (0, 1], got {ratio!r}")
    value = float(ratio)
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"the target ratio must be in (0, 1], got {ratio!r}")
    return value


def _check_bounds(lo: Any, hi: Any) -> tuple[float, float]:
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"min/max sparsity must be numbers, got {lo!r}, {hi!r}") from None
    if not (0.0 <= lo <= hi < 1.0):
        raise ValueError(
            f"need 0 <= min_sparsity <= max_sparsity < 1, got min_sparsity={lo}, max_sparsity={hi}"
        )
    return lo, hi
