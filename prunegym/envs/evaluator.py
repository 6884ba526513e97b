"""The proxy accuracy of one candidate policy, measured on the reward split only.

Tricks, each switchable (and measured in ``benchmarks/bench_episode.py``):

- a fixed evaluation subset of ``subset_size`` reward images, drawn once with ``seed``
  and kept in memory as tensors (``preload``), so no episode re-reads or re-transforms;
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

import math
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from prunegym.pruners import ChannelPruner, PruningPolicy, WeightPruner

Mode = Literal["auto", "masked", "physical"]
Batch = tuple[torch.Tensor, torch.Tensor | None]
_BN = nn.modules.batchnorm._BatchNorm


class EvaluationError(ValueError):
    """The evaluation produced NaN or inf; ``policy`` is the candidate that did it."""

    def __init__(self, message: str, policy: PruningPolicy | None = None) -> None:
        super().__init__(message)
        self.policy = policy


@dataclass(frozen=True)
class EvalResult:
    """Proxy top-1 accuracy and mean cross-entropy of one candidate on the subset."""

    accuracy: float
    loss: float
    samples: int
    mode: str  # "masked", "physical" or "dense"
    seconds: float
    cached: bool = False
    timings: dict[str, float] = field(default_factory=dict, compare=False)


class _NonFinite(Exception):
    pass


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Recompute every BN's running statistics as the plain average over ``batches``.

    Only the BN layers run in training mode (dropout and the rest stay in eval mode);
    momentum and training flags are restored afterwards.
    """
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not bns:
        return
    modes = {m: m.training for m in model.modules()}
    momenta = [bn.momentum for bn in bns]
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: every batch weighs the same
            bn.train()
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
        for m, training in modes.items():
            m.training = training


class _BNSnapshot:
    """Running statistics of every BN of a model, restored exactly on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.saved = [
            (buf, buf.detach().clone())
            for m in model.modules()
            if isinstance(m, _BN) and m.track_running_stats
            for buf in (m.running_mean, m.running_var, m.num_batches_tracked)
            if buf is not None
        ]

    def restore(self) -> None:
        with torch.no_grad():
            for buf, original in self.saved:
                buf.copy_(original)


Pruner = ChannelPruner | WeightPruner


class Evaluator:
    """Proxy accuracy of pruning candidates on a fixed subset of the reward split.

    ``reward_val`` is a Dataset of ``(image, label)`` or a tuple of tensors ``(x, y)``.
    ``calibration`` (for BN recalibration and the ``taylor`` criterion) is a Dataset
    (normally the un-augmented train split), a tensor of inputs, or a sequence of
    batches (``x`` or ``(x, y)``); ``bn_batches`` batches of ``bn_batch_size`` are drawn
    once with ``seed``. ``bn_recalibration=None`` means on when calibration data is given.
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
        batch_size: int = 256,
        bn_recalibration: bool | None = None,
        bn_batches: int = 4,
        bn_batch_size: int = 64,
        cache: bool = True,
        cache_size: int = 100_000,
        mode: Mode = "auto",
        probe: int = 2,
        preload: bool = True,
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
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.mode: Mode = mode
        self.probe = probe
        self.preload = preload
        self.seed = seed
        self.cache_enabled = cache
        self.cache_size = cache_size
        self._dataset = _as_dataset(reward_val)
        n = len(self._dataset)
        if n < 1:
            raise ValueError("the reward_val data is empty")
        if subset_size is None or subset_size >= n:
            self.subset_indices = np.arange(n)
        else:
            if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 1:
                raise ValueError(f"subset_size must be a positive integer, got {subset_size!r}")
            rng = np.random.default_rng(seed)
            self.subset_indices = np.sort(rng.choice(n, size=subset_size, replace=False))
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None
        if preload:
            self._x, self._y = _materialize(self._dataset, self.subset_indices)
            self._x, self._y = self._x.to(self.device), self._y.to(self.device)
        self.calibration, self.calibration_indices = _calibration_batches(
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
        self._caches: weakref.WeakKeyDictionary[Any, OrderedDict[tuple, EvalResult]] = (
            weakref.WeakKeyDictionary()
        )
        self._probe_times: dict[str, list[float]] = {"masked": [], "physical": []}
        self.chosen_mode: str | None = None if mode == "auto" else mode
        self.stats: dict[str, Any] = {
            "evaluations": 0, "cache_hits": 0, "masked": 0, "physical": 0,
            "probe_accuracy_diff": 0.0, "probe_seconds": self._probe_times,
        }  # fmt: skip

    # data -------------------------------------------------------------------------
    @property
    def samples(self) -> int:
        return len(self.subset_indices)

    @property
    def example_input(self) -> torch.Tensor:
        """A one-sample batch from the evaluation subset."""
        if self._x is not None:
            return self._x[:1].clone()
        x, _ = _materialize(self._dataset, self.subset_indices[:1])
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

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The evaluation subset in batches (preloaded tensors, or read through a loader)."""
        if self._x is not None and self._y is not None:
            for i in range(0, len(self._y), self.batch_size):
                yield self._x[i : i + self.batch_size], self._y[i : i + self.batch_size]
            return
        subset = Subset(self._dataset, self.subset_indices.tolist())
        for x, y in DataLoader(subset, batch_size=self.batch_size, shuffle=False):
            yield x.to(self.device), torch.as_tensor(y).to(self.device)

    # evaluation -------------------------------------------------------------------
    def evaluate_model(self, model: nn.Module, recalibrate: bool = False) -> EvalResult:
        """Accuracy of ``model`` as it is (the dense baseline), optionally BN-recalibrated."""
        start = time.perf_counter()
        snapshot = _BNSnapshot(model) if recalibrate else None
        try:
            if recalibrate:
                recalibrate_batchnorm(model, self.calibration_inputs())
            correct, loss, n = self._score(model)
        except _NonFinite as exc:
            raise EvaluationError(f"the dense model's evaluation gave {exc}") from None
        finally:
            if snapshot is not None:
                snapshot.restore()
        return EvalResult(correct / n, loss / n, n, "dense", time.perf_counter() - start)

    def evaluate(self, pruner: Pruner, policy: PruningPolicy) -> EvalResult:
        """Proxy accuracy of ``policy`` applied by ``pruner`` (whose model is not changed)."""
        start = time.perf_counter()
        kept = tuple(int(k) for k in pruner.table.kept_counts(
            policy.as_array(pruner.table), policy.round_to))  # fmt: skip
        key = (policy.granularity, policy.importance, kept)
        cache = self._caches.setdefault(pruner, OrderedDict())
        if self.cache_enabled and key in cache:
            cache.move_to_end(key)
            self.stats["cache_hits"] += 1
            return replace(cache[key], cached=True, seconds=time.perf_counter() - start,
                           timings={})  # fmt: skip
        route = self._route(pruner)
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
                result = self._run(pruner, policy, route)
        except _NonFinite as exc:
            raise EvaluationError(
                f"evaluating the candidate gave {exc}; policy: {policy.to_json()}", policy
            ) from None
        self.stats["evaluations"] += 1
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

    def _run(self, pruner: Pruner, policy: PruningPolicy, route: str) -> EvalResult:
        t0 = time.perf_counter()
        self.stats[route] += 1
        if route == "masked":
            model = pruner.model
            snapshot = _BNSnapshot(model) if self.bn_recalibration else None
            pruner.mask(policy)
            try:
                t1 = time.perf_counter()
                if self.bn_recalibration:
                    recalibrate_batchnorm(model, self.calibration_inputs())
                t2 = time.perf_counter()
                correct, loss, n = self._score(model)
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
            correct, loss, n = self._score(model)
        t3 = time.perf_counter()
        timings = {"prune": t1 - t0, "bn": t2 - t1, "forward": t3 - t2}
        return EvalResult(correct / n, loss / n, n, route, t3 - t0, False, timings)

    def _score(self, model: nn.Module) -> tuple[int, float, int]:
        was_training = model.training
        model.eval()
        correct = n = 0
        loss = 0.0
        try:
            with torch.inference_mode():
                for x, y in self.batches():
                    logits = model(x)
                    if not bool(torch.isfinite(logits).all()):
                        bad = "NaN" if bool(torch.isnan(logits).any()) else "inf"
                        raise _NonFinite(f"{bad} logits")
                    loss += float(F.cross_entropy(logits, y, reduction="sum"))
                    correct += int((logits.argmax(1) == y).sum())
                    n += len(y)
        finally:
            model.train(was_training)
        if not math.isfinite(loss):
            raise _NonFinite("an infinite loss")
        return correct, loss, n


# ----------------------------------------------------------------------------- helpers


def _as_dataset(data: Any) -> Any:
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        x, y = data
        if len(x) != len(y):
            raise ValueError(
                f"reward_val tensors differ in length: {len(x)} inputs, {len(y)} labels"
            )
        return TensorDataset(x, y.long())
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise ValueError(
            f"reward_val must be a Dataset or a tuple of tensors (x, y), got {type(data).__name__}"
        )
    return data


def _materialize(dataset: Any, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(dataset, TensorDataset):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return dataset.tensors[0][idx], dataset.tensors[1][idx]
    xs, ys = [], []
    for i in indices:
        x, y = dataset[int(i)]
        xs.append(torch.as_tensor(x))
        ys.append(int(y))
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long)


def _calibration_batches(
    source: Any, n_batches: int, batch_size: int, seed: int, device: torch.device
) -> tuple[list[Batch], np.ndarray | None]:
    if source is None:
        return [], None
    if (
        isinstance(source, (tuple, list))
        and len(source) == 2
        and all(isinstance(t, torch.Tensor) for t in source)
        and source[1].dim() == 1
        and len(source[0]) == len(source[1])
        and not source[1].is_floating_point()
    ):
        x, y = source
        pairs = zip(torch.split(x, batch_size), torch.split(y, batch_size), strict=True)
        batches = [(xb.to(device), yb.to(device)) for xb, yb in pairs]
        return batches[:n_batches], None
    if isinstance(source, torch.Tensor):
        chunks = list(torch.split(source, batch_size))[:n_batches]
        return [(c.to(device), None) for c in chunks], None
    if isinstance(source, Sequence) and not hasattr(source, "indices"):
        out: list[Batch] = []
        for item in list(source)[:n_batches]:
            if isinstance(item, torch.Tensor):
                out.append((item.to(device), None))
            else:
                x, y = item
                out.append((x.to(device), torch.as_tensor(y).to(device)))
        return out, None
    dataset = _as_dataset(source)
    n = min(len(dataset), n_batches * batch_size)
    if n < 1:
        return [], None
    order = np.random.default_rng(seed + 1).permutation(len(dataset))[:n]
    x, y = _materialize(dataset, order)
    batches = [
        (xb.to(device), yb.to(device))
        for xb, yb in zip(torch.split(x, batch_size), torch.split(y, batch_size), strict=True)
    ]
    return batches, order
