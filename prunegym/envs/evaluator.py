"""The proxy accuracy of one candidate policy, measured on the reward split only.

Tricks, each switchable (and measured in ``benchmarks/bench_episode.py``):

- a fixed evaluation subset of ``subset_size`` reward images, drawn once with ``seed``
  and kept in memory as tensors (``preload``), so no episode re-reads or re-transforms;
  a slice larger than ``preload_max_mb`` (default :data:`PRELOAD_MAX_MB`, 1024 MB) is
  streamed from the dataset in batches instead, with the same results;
- a second, disjoint held-out slice of the reward split (``heldout_size``, default a
  fifth of it), never seen by the search: the best candidates are re-scored on it
  (``split="heldout"``) so the one picked is not merely the luckiest on the first;
- adaptive batch-norm recalibration (EagleEye, Li et al. 2020): after pruning, the BN
  running statistics are recomputed on a few calibration batches from the training
  split, which makes the proxy rank candidates much closer to their fine-tuned order;
- a cache of policies already evaluated, keyed by the kept counts after rounding (the
  counts, not the sparsities, define the network);
- masked evaluation (zeroed channels in the dense network) or physically pruned
  evaluation (a smaller copy), whichever measured faster on the first candidates.

The evaluator only ever reads the ``reward_val`` data and the calibration source it is
given; it never sees a test split. NaN or inf logits raise :class:`EvaluationError`
carrying the policy, never a silent reward.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from prunegym.envs.batchnorm import BNSnapshot, recalibrate_batchnorm
from prunegym.envs.evaldata import (
    as_dataset,
    calibration_batches,
    materialize,
    reward_val_slices,
)
from prunegym.envs.scoring import NonFiniteOutputError, Score, score_batches
from prunegym.pruners import ChannelPruner, PruningPolicy, WeightPruner

Mode = Literal["auto", "masked", "physical"]
#: The most memory (MiB) the preloaded slices may take together; above it they stream.
PRELOAD_MAX_MB = 1024.0
Split = Literal["search", "heldout"]


class EvaluationError(ValueError):
    """The evaluation produced NaN or inf; ``policy`` is the candidate that did it."""

    def __init__(self, message: str, policy: PruningPolicy | None = None) -> None:
        super().__init__(message)
        self.policy = policy


def canonical_device(device: str | torch.device) -> torch.device:
    """One spelling per device: ``cuda`` is the current CUDA device (``cuda:0`` usually),
    ``cpu:0`` is ``cpu``. So the same device always compares equal."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        return torch.device("cuda", index)
    if dev.type == "cpu":
        return torch.device("cpu")
    return dev


@dataclass(frozen=True)
class ProxyResult:
    """Proxy top-1 accuracy and mean cross-entropy of one candidate on the subset."""

    accuracy: float
    loss: float
    samples: int
    mode: str  # "masked", "physical" or "dense"
    seconds: float
    cached: bool = False
    timings: dict[str, float] = field(default_factory=dict, compare=False)


Pruner = ChannelPruner | WeightPruner


class Evaluator:
    """Proxy accuracy of pruning candidates on a fixed subset of the reward split.

    ``reward_val`` is a Dataset of ``(image, label)`` or a tuple of tensors ``(x, y)``;
    ``heldout_size`` of its samples (default a fifth; 0 for none) form the held-out slice
    and ``subset_size`` of the rest (default all) the search slice, both drawn once with
    ``seed`` and disjoint.
    ``calibration`` (for BN recalibration and the ``taylor`` criterion) is a Dataset
    (normally the un-augmented train split), a tensor of inputs, or a sequence of
    batches (``x`` or ``(x, y)``); ``bn_batches`` batches of ``bn_batch_size`` are drawn
    once with ``seed``. ``bn_recalibration=None`` means on when calibration data is given.
    ``preload`` keeps the slices in memory as tensors while their inputs and labels take
    at most ``preload_max_mb`` MiB together (the search slice first); a slice above the
    cap is read from the dataset batch by batch at every evaluation (same batches, same
    results, slower on expensive datasets).
    ``mode="auto"`` evaluates the first ``probe`` candidates both masked and physically
    pruned, then keeps the route whose fastest run was faster (channel pruning only;
    weight pruning is always masked: folding its masks does not shrink the network).
    """

    def __init__(
        self,
        reward_val: Any,
        calibration: Any = None,
        *,
        subset_size: int | None = None,
        heldout_size: int | None = None,
        batch_size: int = 256,
        bn_recalibration: bool | None = None,
        bn_batches: int = 4,
        bn_batch_size: int = 64,
        cache: bool = True,
        cache_size: int = 100_000,
        mode: Mode = "auto",
        probe: int = 2,
        preload: bool = True,
        preload_max_mb: float = PRELOAD_MAX_MB,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if mode not in ("auto", "masked", "physical"):
            raise ValueError(f"mode must be 'auto', 'masked' or 'physical', got {mode!r}")
        sizes = {"batch_size": batch_size, "bn_batches": bn_batches,
                 "bn_batch_size": bn_batch_size, "cache_size": cache_size}  # fmt: skip
        for label, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if isinstance(probe, bool) or not isinstance(probe, int) or probe < 0:
            raise ValueError(f"probe must be a non-negative integer, got {probe!r}")
        if isinstance(preload_max_mb, bool) or not isinstance(preload_max_mb, int | float) \
                or not preload_max_mb >= 0:  # fmt: skip
            raise ValueError(f"preload_max_mb must be a number >= 0, got {preload_max_mb!r}")
        self.device = canonical_device(device)
        self.batch_size = batch_size
        self.mode: Mode = mode
        self.probe = probe
        self.preload = preload
        self.preload_max_mb = float(preload_max_mb)
        self.seed = seed
        self.cache_enabled = cache
        self.cache_size = cache_size
        self._dataset = as_dataset(reward_val)
        n = len(self._dataset)
        if n < 1:
            raise ValueError("the reward_val data is empty")
        self.subset_indices, self.heldout_indices = reward_val_slices(
            n, subset_size, heldout_size, seed
        )
        self._indices = {"search": self.subset_indices, "heldout": self.heldout_indices}
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if preload:
            self._preload()
        self.calibration, self.calibration_indices = calibration_batches(
            calibration, bn_batches, bn_batch_size, seed, self.device
        )
        if bn_recalibration is None:
            bn_recalibration = bool(self.calibration)
        if bn_recalibration and not self.calibration:
            raise ValueError(
                "bn_recalibration needs calibration data: pass data with a train split or "
                "calibration=..., or set bn_recalibration=False"
            )
        self.bn_recalibration = bool(bn_recalibration)
        self._caches: weakref.WeakKeyDictionary[Any, OrderedDict[tuple, ProxyResult]] = (
            weakref.WeakKeyDictionary()
        )
        self._probe_times: dict[str, list[float]] = {"masked": [], "physical": []}
        self.chosen_mode: str | None = None if mode == "auto" else mode
        self.stats: dict[str, Any] = {
            "evaluations": 0, "cache_hits": 0, "heldout_evaluations": 0, "masked": 0,
            "physical": 0,
            "probe_accuracy_diff": 0.0, "probe_seconds": self._probe_times,
        }  # fmt: skip

    # data -------------------------------------------------------------------------
    def _preload(self) -> None:
        """Hold the slices as tensors while they fit in ``preload_max_mb`` together (the
        size is measured on one sample, before anything else is read)."""
        budget = self.preload_max_mb * 2**20
        for split, indices in self._indices.items():
            if not len(indices):
                continue  # no held-out slice
            x1, y1 = materialize(self._dataset, indices[:1])
            size = len(indices) * (x1.element_size() * x1.numel() + y1.element_size())
            if size > budget:
                continue  # streamed by batches()
            budget -= size
            x, y = materialize(self._dataset, indices)
            self._tensors[split] = (x.to(self.device), y.to(self.device))

    @property
    def preloaded(self) -> tuple[str, ...]:
        """The slices held in memory as tensors (the others stream)."""
        return tuple(self._tensors)

    @property
    def samples(self) -> int:
        """Samples of the search slice."""
        return len(self.subset_indices)

    @property
    def heldout_samples(self) -> int:
        """Samples of the held-out slice (0: none)."""
        return len(self.heldout_indices)

    @property
    def example_input(self) -> torch.Tensor:
        """A one-sample batch from the evaluation subset."""
        if "search" in self._tensors:
            return self._tensors["search"][0][:1].clone()
        x, _ = materialize(self._dataset, self.subset_indices[:1])
        return x.to(self.device)

    def calibration_inputs(self) -> list[torch.Tensor]:
        return [x for x, _ in self.calibration]

    def calibration_pair(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """All calibration batches as one ``(x, y)`` (for ``taylor``), if they have labels."""
        if not self.calibration or any(y is None for _, y in self.calibration):
            return None
        xs = torch.cat([x for x, _ in self.calibration])
        ys = torch.cat([y for _, y in self.calibration if y is not None])
        return xs, ys

    def batches(self, split: Split = "search") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A slice (``search`` or ``heldout``) in batches (preloaded, or through a loader)."""
        if split not in self._indices:
            raise ValueError(f"split must be 'search' or 'heldout', got {split!r}")
        if not len(self._indices[split]):
            raise ValueError(f"the {split} slice is empty (heldout_size=0?)")
        if split in self._tensors:
            x, y = self._tensors[split]
            for i in range(0, len(y), self.batch_size):
                yield x[i : i + self.batch_size], y[i : i + self.batch_size]
            return
        subset = Subset(self._dataset, self._indices[split].tolist())
        for x, y in DataLoader(subset, batch_size=self.batch_size, shuffle=False):
            yield x.to(self.device), torch.as_tensor(y).to(self.device)

    # evaluation -------------------------------------------------------------------
    def evaluate_model(
        self, model: nn.Module, recalibrate: bool = False, split: Split = "search"
    ) -> ProxyResult:
        """Accuracy of ``model`` as it is (the dense baseline) on a slice, optionally
        BN-recalibrated."""
        start = time.perf_counter()
        snapshot = BNSnapshot(model) if recalibrate else None
        try:
            if recalibrate:
                recalibrate_batchnorm(model, self.calibration_inputs())
            score = self._score(model, split)
        except NonFiniteOutputError as exc:
            raise EvaluationError(f"the dense model's evaluation gave {exc}") from None
        finally:
            if snapshot is not None:
                snapshot.restore()
        return ProxyResult(score.top1, score.loss, score.samples, "dense",
                           time.perf_counter() - start)  # fmt: skip

    def evaluate(
        self, pruner: Pruner, policy: PruningPolicy, split: Split = "search"
    ) -> ProxyResult:
        """Proxy accuracy of ``policy`` applied by ``pruner`` (whose model is not changed)
        on the ``search`` slice, or on the ``heldout`` one (never probed)."""
        start = time.perf_counter()
        kept = tuple(int(k) for k in pruner.table.kept_counts(
            policy.as_array(pruner.table), policy.round_to))  # fmt: skip
        key = (split, policy.granularity, policy.importance, kept)
        cache = self._caches.setdefault(pruner, OrderedDict())
        if self.cache_enabled and key in cache:
            cache.move_to_end(key)
            self.stats["cache_hits"] += 1
            return replace(cache[key], cached=True, seconds=time.perf_counter() - start,
                           timings={})  # fmt: skip
        route = self._route(pruner)
        if split == "heldout" and route == "probe":
            route = "physical"
        try:
            if route == "probe":  # alternate which route goes first (warm caches, load)
                first_masked = len(self._probe_times["masked"]) % 2 == 0
                masked = self._run(pruner, policy, "masked") if first_masked else None
                result = self._run(pruner, policy, "physical")
                masked = masked or self._run(pruner, policy, "masked")
                self._probe_times["masked"].append(masked.seconds)
                self._probe_times["physical"].append(result.seconds)
                diff = abs(masked.accuracy - result.accuracy)
                self.stats["probe_accuracy_diff"] = max(self.stats["probe_accuracy_diff"], diff)
                if len(self._probe_times["physical"]) >= self.probe:
                    # each route's fastest run: the very first run pays a one-off warm-up
                    times = self._probe_times
                    self.chosen_mode = min(times, key=lambda k: min(times[k]))
            else:
                result = self._run(pruner, policy, route, split)
        except NonFiniteOutputError as exc:
            raise EvaluationError(
                f"evaluating the candidate gave {exc}; policy: {policy.to_json()}", policy
            ) from None
        self.stats["evaluations" if split == "search" else "heldout_evaluations"] += 1
        result = replace(result, seconds=time.perf_counter() - start)
        if self.cache_enabled:
            cache[key] = result
            if len(cache) > self.cache_size:
                cache.popitem(last=False)
        return result

    def _route(self, pruner: Pruner) -> str:
        if isinstance(pruner, WeightPruner):
            return "masked"  # folding weight masks does not make the network smaller
        if self.chosen_mode is not None:
            return self.chosen_mode
        return "probe" if self.probe > 0 else "physical"

    def _run(
        self, pruner: Pruner, policy: PruningPolicy, route: str, split: Split = "search"
    ) -> ProxyResult:
        t0 = time.perf_counter()
        self.stats[route] += 1
        if route == "masked":
            model = pruner.model
            snapshot = BNSnapshot(model) if self.bn_recalibration else None
            pruner.mask(policy)
            try:
                t1 = time.perf_counter()
                if self.bn_recalibration:
                    recalibrate_batchnorm(model, self.calibration_inputs())
                t2 = time.perf_counter()
                score = self._score(model, split)
            finally:
                pruner.unmask()
                if snapshot is not None:
                    snapshot.restore()
        else:
            model = pruner.apply(policy)
            t1 = time.perf_counter()
            if self.bn_recalibration:
                recalibrate_batchnorm(model, self.calibration_inputs())
            t2 = time.perf_counter()
            score = self._score(model, split)
        t3 = time.perf_counter()
        timings = {"prune": t1 - t0, "bn": t2 - t1, "forward": t3 - t2}
        return ProxyResult(score.top1, score.loss, score.samples, route, t3 - t0, False, timings)

    def _score(self, model: nn.Module, split: Split = "search") -> Score:
        return score_batches(model, self.batches(split), check_finite=True)


def evaluator_from_data(data: Any, **options: Any) -> Evaluator:
    """An :class:`Evaluator` on ``data.reward_val`` with calibration from the train split.

    ``data`` is any object with a ``reward_val`` Dataset (and optionally ``train``; an
    un-augmented ``plain("train")`` is preferred). Bare tensors ``(x, y)`` are refused:
    they carry no train split, so batch-norm recalibration and reconstruction would be
    off without a word. The test split is never read.
    """
    if isinstance(data, (tuple, list)):
        raise ValueError(
            "data=(x, y) is not accepted (it has no train split, so BN recalibration and "
            "reconstruction would silently be off): pass "
            "prunegym.experiments.DataSplits.from_tensors(train=(x, y)), or "
            "evaluator=Evaluator((x, y)) to score on those tensors alone"
        )
    reward_val = getattr(data, "reward_val", None)
    if reward_val is None:
        raise ValueError(
            f"data must have a reward_val split (e.g. a DataSplits); got {type(data).__name__}"
        )
    calibration = None
    if callable(getattr(data, "plain", None)):
        calibration = data.plain("train")
    elif getattr(data, "train", None) is not None:
        calibration = data.train
    return Evaluator(reward_val, calibration, **options)
