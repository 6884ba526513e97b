"""PruningEnv: the model being compressed as a Gymnasium environment (AMC)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from prunegym.envs.contract import GameDescription, HeldoutScore
from prunegym.envs.evaluator import (
    EvaluationError,
    Evaluator,
    ProxyResult,
    canonical_device,
    evaluator_from_data,
)
from prunegym.envs.game import WalledGame, check_bounds, check_round_to
from prunegym.envs.observation import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    FEATURES,
    OBSERVATION_SIZE,
    ObservationBuilder,
)
from prunegym.envs.presets import resolve_settings
from prunegym.envs.rewards import make_reward
from prunegym.envs.targets import TargetContext, check_target, make_target
from prunegym.envs.wall import ActionWall
from prunegym.pruners import ChannelPruner, LayerTable, PruningPolicy, Reconstructor, WeightPruner
from prunegym.pruners.table import Granularity

_LATENCY_KEYS = {"levels", "threads", "warmup", "repeats", "dense_repeats", "batch_size"}


def _feature_doc() -> str:
    return "\n".join(f"    | {i:>2} | {name} | {meaning} |" for i, (name, meaning) in
                     enumerate(FEATURES))  # fmt: skip


class PruningEnv(WalledGame):
    """Choose, unit by unit, how much of a trained network to prune.

    ## Description
    The model being compressed is the environment (AMC, He et al. 2018). An episode walks
    the prunable units of the model's :class:`~prunegym.pruners.LayerTable` in execution
    order (a channel unit is a dependency group: the coupled channels of a residual stage
    are one unit; a weight unit is one conv/linear weight); each step chooses one unit's
    sparsity (a unit the budget leaves a single choice is applied without a step). After
    the last unit the whole policy is applied to a private copy of the
    model (the caller's model is never touched) and scored on the reward split by the
    :class:`~prunegym.envs.Evaluator`. The budget is hard: an action wall keeps every
    episode inside it.

    ## Action Space
    ``Box(-1, 1, (1,), float32)``, relative to the action wall: the wall lets the unit
    keep at most as many channels (or weights) as still lets the target be met if every
    later unit went to ``max_sparsity``, and at least its count at ``max_sparsity``; the
    rounded levels in between (multiples of ``round_to``) split the action range into
    equal bins, -1 keeping the most the wall allows (sparsity ``min_allowed``, observed)
    and +1 the fewest. No action is clipped by the wall and every bin is a different
    network; out-of-range actions count as -1 or 1, non-finite ones are errors. Each step
    reports the ``requested_sparsity`` (where the action points in ``[min_allowed,
    max_sparsity]``), the applied ``sparsity`` (the picked level) and the number of
    ``levels``. Every episode ends with ``cost <= ratio * dense cost`` exactly (MACs and
    params: integers, no tolerance).

    ## Observation Space
    ``Box(0, 1, ({size},), float32)``, the same length and meaning for every model; features
    are log scales with fixed ceilings or shares of the dense model's totals (never a
    per-model min-max), so an agent trained on one network can act on another:

    |  # | feature | meaning |
    |----|---------|---------|
    {features}

    ## Rewards
    0 on every step but the last. At the last step, the named reward computed from the
    evaluator's proxy accuracy: ``retention`` (default), ``acc / dense_acc``, the same
    scale on every model; ``accuracy`` (AMC's ``acc_reward``); ``amc``, ``-error *
    ln(MACs)``, whose scale depends on the model's absolute MACs; ``tradeoff``, ``w_acc *
    acc / dense_acc + w_macs * (1 - MACs ratio) + w_params * (1 - params ratio)``, weights
    via ``reward_weights``. :mod:`prunegym.envs.rewards` says when each fits. Its terms
    are in ``info["reward_terms"]``.

    ## Starting State
    ``reset(seed=...)`` restores the unpruned state: no unit decided, the first unit
    observed. The environment itself draws no random numbers.

    ## Episode End
    ``terminated`` is True once every unit is decided (at most one step per unit; the
    units applied without a step are ``info["skipped_units"]``); there is no
    truncation. The terminal ``info`` holds ``policy`` (a
    :class:`~prunegym.pruners.PruningPolicy` with the walled sparsities),
    ``accuracy``, ``macs_ratio``, ``params_ratio`` (and ``latency_ratio``) at the top level,
    ``requested_sparsities``, ``sparsities``, ``kept_counts``, ``metrics`` (accuracy,
    loss, dense_accuracy, macs, params, their ratios, achieved target ratio, the lookup
    estimate for the latency target), ``reward`` and ``reward_terms``, ``target``,
    ``evaluation`` (route, cache hit) and ``seconds`` (time spent: ``episode``, ``steps``,
    ``evaluation`` and its ``evaluation_prune``/``_bn``/``_forward`` parts). The keys
    and their types are :class:`~prunegym.envs.contract.TerminalInfo`.

    ## Arguments
    ``model`` (a trained ``nn.Module``), ``data`` (an object with ``reward_val`` and
    ``train`` Datasets, e.g. ``prunegym.experiments.build_data(...)`` or, for your own
    tensors, ``prunegym.experiments.DataSplits.from_tensors(train=(x, y))``) or
    ``evaluator`` (an :class:`Evaluator`); ``target`` (``macs``, ``params`` or
    ``latency``) and ``ratio`` in (0, 1] (the fraction of the dense cost the result may
    keep); ``min_sparsity``/``max_sparsity`` (default 0 and 0.8); ``importance``
    (default ``l1``); ``round_to`` (channel rounding, default 8; 1 for weights);
    ``reward`` (default ``retention``) and ``reward_weights``; ``evaluator_options``
    (keyword arguments of :class:`Evaluator`); ``reconstruction`` (AMC's least-squares
    refit of the consumers on the calibration batches; default: on wherever a train
    split gives calibration data, channel pruning only); ``latency_options``
    (``levels``, ``threads``, ``warmup``, ``repeats``, ``dense_repeats`` of the latency
    lookup, and ``batch_size`` of the timing input); ``example_input``, ``ignored``
    layers, ``device``, ``seed`` (channel ranking and evaluation subset); ``preset``
    (``"amc"``: the AMC reference's ranking, reconstruction, reward, bounds and
    rounding, see :mod:`prunegym.envs.presets`; arguments given explicitly win). The
    resolved values are in ``env.settings``.

    Searchers use the game contract (:class:`~prunegym.envs.contract.PruningGame`):
    ``n_units``, ``unit_names``, ``target_ratio``, ``sparsity_for_action(a)`` and
    ``action_for_sparsity(s)`` (for the unit being decided), ``cost_ratio(sparsities)``
    and ``within_budget(sparsities)`` (no model touched); ``play(sparsities)`` runs one
    whole episode and returns ``(reward, terminal info)``.

    The latency target uses a per-layer latency lookup measured once on the current
    device (:class:`~prunegym.envs.latency_table.LatencyTable`): an approximation. The
    :class:`~prunegym.envs.latency.RealLatency` wrapper measures each final policy for
    real; :func:`~prunegym.envs.factory.make_pruning_env` and the registered ids add it
    for the latency target (``measure_latency``).
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any = None,
        *,
        evaluator: Evaluator | None = None,
        granularity: str = "channel",
        target: str = "macs",
        ratio: float = 0.5,
        min_sparsity: float | None = None,
        max_sparsity: float | None = None,
        importance: str | None = None,
        round_to: int | None = None,
        reward: str | None = None,
        reward_weights: Mapping[str, float] | None = None,
        evaluator_options: Mapping[str, Any] | None = None,
        reconstruction: bool | None = None,
        latency_options: Mapping[str, Any] | None = None,
        example_input: torch.Tensor | None = None,
        ignored: Iterable[str] = (),
        device: str | torch.device = "cpu",
        seed: int = 0,
        preset: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch nn.Module, got {type(model).__name__}")
        if granularity not in ("channel", "weight"):
            raise ValueError(f"granularity must be 'channel' or 'weight', got {granularity!r}")
        given = {"min_sparsity": min_sparsity, "max_sparsity": max_sparsity,
                 "importance": importance, "round_to": round_to, "reward": reward,
                 "reconstruction": reconstruction,
                 "evaluator_options": evaluator_options}  # fmt: skip
        self.settings = resolve_settings(preset, given)
        self.preset = preset
        ratio = check_target(target, ratio)
        min_sparsity, max_sparsity = check_bounds(
            self.settings["min_sparsity"], self.settings["max_sparsity"]
        )
        if render_mode is not None:
            raise ValueError(
                f"PruningEnv renders nothing; render_mode must be None, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.granularity = granularity
        self.importance = str(self.settings["importance"])
        self.round_to = check_round_to(granularity, target, self.settings["round_to"])
        self.device = canonical_device(device)
        self.reward_fn = make_reward(self.settings["reward"], reward_weights)
        if evaluator is not None and evaluator_options:
            raise ValueError("evaluator_options apply only when the env builds the evaluator")
        self.evaluator = evaluator if evaluator is not None else self._evaluator(
            data, self.settings["evaluator_options"], seed
        )  # fmt: skip
        if canonical_device(self.evaluator.device) != self.device:
            raise ValueError(f"the evaluator's data is on {self.evaluator.device}, the env's "
                             f"device is {self.device}")  # fmt: skip
        if example_input is None:
            example_input = getattr(data, "example_input", None)
        if example_input is None:
            example_input = self.evaluator.example_input
        self.example_input = torch.as_tensor(example_input).to(self.device)

        self.model = copy.deepcopy(model).to(self.device).eval()  # the caller's stays as is
        grain: Granularity = "weight" if granularity == "weight" else "channel"
        self.table = LayerTable.from_model(self.model, self.example_input, grain,
                                           ignored=tuple(ignored))  # fmt: skip
        self.pruner = self._pruner(self.settings["reconstruction"], seed)
        lookup, batch = _latency_options(latency_options)
        self.latency_input = self.example_input[:1].repeat(
            batch, *[1] * (self.example_input.dim() - 1)
        )
        context = TargetContext(self.table, self.model, self.latency_input, lookup)
        goal = make_target(target, ratio, context)
        wall = ActionWall(self.table.channels, granularity, goal, min_sparsity, max_sparsity,
                          self.round_to, channel_groups=self.table.channel_groups)  # fmt: skip
        self._start_game(self.table.names, wall)
        self._obs = ObservationBuilder(self.table, goal, wall.kept_min)
        self.observation_space = spaces.Box(0.0, 1.0, (OBSERVATION_SIZE,), np.float32)
        self._dense_result: ProxyResult | None = None
        self._dense_heldout: ProxyResult | None = None

    def _evaluator(self, data: Any, options: Mapping[str, Any], seed: int) -> Evaluator:
        if data is None:
            raise ValueError("PruningEnv needs data=... (with a reward_val split) or evaluator=...")
        return evaluator_from_data(data, **{"device": self.device, "seed": seed, **options})

    def _pruner(self, reconstruction: bool | None, seed: int) -> ChannelPruner | WeightPruner:
        """The pruner; ``reconstruction=None`` refits wherever calibration data exists."""
        batches = self.evaluator.calibration_inputs()
        if self.granularity == "weight":
            if reconstruction:
                raise ValueError("reconstruction applies to channel pruning only")
            self.settings["reconstruction"] = False
            return WeightPruner(self.model, self.table, importance=self.importance)
        if reconstruction is None:
            reconstruction = bool(batches)
        self.settings["reconstruction"] = reconstruction
        recon = None
        if reconstruction:
            if not batches:
                raise ValueError("reconstruction needs calibration data (a train split)")
            recon = Reconstructor(self.model, self.table, batches, seed=seed)
        return ChannelPruner(
            self.model, self.table, importance=self.importance, round_to=self.round_to,
            example_input=self.example_input, calibration=self.evaluator.calibration_pair(),
            seed=seed, reconstruction=recon,
        )  # fmt: skip

    def game_description(self) -> GameDescription:
        """What an agent trained on this env depends on (a saved agent records it)."""
        return {
            "action_mapping": self.action_mapping,
            "feature_version": FEATURE_VERSION,
            "observation_features": list(FEATURE_NAMES),
            "granularity": self.granularity,
            "round_to": self.round_to,
            "target_kind": self.target.kind,
            "target_ratio": self.target.ratio,
            "reward_name": self.reward_fn.name,
            "min_sparsity": self.min_sparsity,
            "max_sparsity": self.max_sparsity,
            "unit_kinds": [str(u.kind) for u in self.table],
            "unit_channels": [int(c) for c in self.table.channels],
        }

    def _observe(self) -> np.ndarray:
        t = self.step_index
        previous = float(self._sparsity[t - 1]) if t > 0 else 0.0
        return self._obs(t, self._kept, self.min_allowed_sparsity(), previous)

    def _finish(self) -> tuple[float, dict[str, Any]]:
        policy = PruningPolicy.from_array(
            self.table, self._sparsity, importance=self.importance, round_to=self.round_to,
            meta={"target": self.target.kind, "ratio": self.target.ratio},
        )  # fmt: skip
        kept = self._kept.copy()
        if not np.array_equal(
            self.table.kept_counts(policy.as_array(self.table), self.round_to), kept
        ):
            raise RuntimeError("the policy's kept counts differ from the wall's (internal)")
        achieved = float(self.target.cost(kept))
        if achieved > self.target.budget:
            raise RuntimeError(
                f"episode ended over budget: {achieved} > {self.target.budget} (internal)"
            )
        seconds: dict[str, float] = {"steps": self._step_seconds}
        if self._dense_result is None:
            self._dense_result = self.evaluator.evaluate_model(self.model)
            seconds["dense_evaluation"] = self._dense_result.seconds
        result = self.evaluator.evaluate(self.pruner, policy)
        seconds["evaluation"] = result.seconds
        seconds.update({f"evaluation_{k}": v for k, v in result.timings.items()})
        metrics = self._metrics(result, kept, achieved)
        outcome = self.reward_fn(metrics)
        reward = float(outcome.value)
        if not math.isfinite(reward):
            raise EvaluationError(f"the {self.reward_fn.name} reward is {reward}; policy: "
                                  f"{policy.to_json()}", policy)  # fmt: skip
        seconds["episode"] = time.perf_counter() - self._episode_start
        return reward, {
            **{k: metrics[k] for k in ("accuracy", "macs_ratio", "params_ratio")},
            "policy": policy,
            "requested_sparsities": self._requested.tolist(),
            "sparsities": self._sparsity.tolist(),
            "kept_counts": kept.tolist(),
            "metrics": metrics,
            "reward": reward,
            "reward_name": self.reward_fn.name,
            "reward_terms": dict(outcome.terms),
            "target": {"kind": self.target.kind, "ratio": self.target.ratio,
                       "budget": self.target.budget, "achieved": achieved},
            "evaluation": {"mode": result.mode, "cached": result.cached},
            "seconds": seconds,
        }  # fmt: skip

    def score_heldout(self, policy: PruningPolicy) -> HeldoutScore | None:
        """``policy`` scored on the evaluator's held-out slice of the reward split, with
        the same pruner (BN recalibration, reconstruction) and reward as the search;
        None when the evaluator has no held-out slice."""
        if not getattr(self.evaluator, "heldout_samples", 0):
            return None
        if self._dense_heldout is None:
            self._dense_heldout = self.evaluator.evaluate_model(self.model, split="heldout")
        result = self.evaluator.evaluate(self.pruner, policy, split="heldout")
        kept = self.table.kept_counts(policy.as_array(self.table), policy.round_to)
        achieved = float(self.target.cost(kept))
        metrics = self._metrics(result, kept, achieved, self._dense_heldout)
        reward = float(self.reward_fn(metrics).value)
        return {"accuracy": result.accuracy, "reward": reward, "samples": result.samples}

    def _metrics(
        self, result: ProxyResult, kept: np.ndarray, achieved: float,
        dense: ProxyResult | None = None,
    ) -> dict[str, float]:  # fmt: skip
        dense = dense if dense is not None else self._dense_result
        assert dense is not None
        cost = self.table.cost_of_kept(kept)
        total = self.table.total
        metrics = {
            "accuracy": result.accuracy,
            "loss": result.loss,
            "dense_accuracy": dense.accuracy,
            "macs": float(cost.macs),
            "params": float(cost.params),
            "macs_ratio": cost.macs / total.macs,
            "params_ratio": cost.params / total.params,
            "achieved_ratio": achieved / self.target.dense_cost,
            "eval_samples": float(result.samples),
        }
        if self.target.latency_table is not None:
            metrics["latency_estimate_ms"] = achieved
        return metrics


PruningEnv.__doc__ = (
    (PruningEnv.__doc__ or "")
    .replace("    {features}", _feature_doc())
    .replace("({size},)", f"({OBSERVATION_SIZE},)")
)


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


def _latency_options(options: Mapping[str, Any] | None) -> tuple[dict[str, Any], int]:
    """(the latency lookup's options, the timing batch size)."""
    lookup = dict(options or {})
    unknown = sorted(set(lookup) - _LATENCY_KEYS)
    if unknown:
        raise ValueError(f"unknown latency option(s) {unknown}; known: {sorted(_LATENCY_KEYS)}")
    return lookup, int(lookup.pop("batch_size", 1))
