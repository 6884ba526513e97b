"""Thin, checked access to Torch-Pruning's dependency graph.

Known facts about torch-pruning 1.6 handled here: ``build_dependency`` leaves the
model in eval mode (we restore the caller's mode); some architectures (channel
shuffle) fail to trace (we raise :class:`UnsupportedModelError` naming the model);
and its shape inference misreads some reshapes (Swin's window partition) as flattens,
after which one dependency group multiplies its channel indices by 32 on every pass
(hundreds of seconds and gigabytes before it ends). :class:`GuardedGraph` bounds that
walk and refuses such a graph within seconds.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from prunegym.pruners.errors import UnsupportedModelError

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""Layers whose weights prunegym prunes and whose MACs and params it counts."""

MASKABLE_TYPES = (*PRUNABLE_TYPES, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
"""Layers whose output channels a reversible mask can zero exactly (dim 0 of each param)."""

INDEX_BUDGET = 4_000_000
"""Channel indices one dependency group may move along its edges in all (legitimate
groups of the torchvision sweep move well under a million; TP needs about a second
per million)."""


@contextlib.contextmanager
def preserved_mode(model: nn.Module) -> Iterator[None]:
    """Restore the training flag of every submodule on exit."""
    modes = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Torch-Pruning's shape inference warns each time it gives up on a reshape; the
    guard below deals with what follows, so the warning is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Maximum recursive depth reached")
        yield


class _Budget:
    """Counts the channel indices one group walk moves along its edges; refuses an index
    mapping whose output, predicted from that mapping's growth so far, would pass the
    limit (one such call can take minutes)."""

    def __init__(self, limit: int, model_name: str) -> None:
        self.limit, self.model_name = limit, model_name
        self.used = 0
        self.growth: dict[int, float] = {}  # id(mapping) -> largest output/input ratio seen

    def reset(self) -> None:
        self.used = 0
        self.growth.clear()

    def check(self, count: float) -> None:
        """Refuse if ``count`` more indices would pass the limit."""
        if self.used + count > self.limit:
            raise UnsupportedModelError(
                f"torch-pruning's channel dependencies of {self.model_name} do not converge "
                f"(over {self.limit:,} channel indices for one group): its shape inference "
                f"reads a reshape as a flatten, as in Swin's window attention"
            )

    def spend(self, count: int) -> None:
        self.check(count)
        self.used += count

    def call(self, mapping: Callable, idxs: Sequence) -> Any:
        """Run one index mapping unless its growth so far predicts too large an output."""
        self.check(len(idxs) * self.growth.get(id(mapping), 1.0))
        out = mapping(idxs)
        if idxs:
            ratio = len(out) / len(idxs)
            self.growth[id(mapping)] = max(ratio, self.growth.get(id(mapping), 0.0))
        return out


class _GuardedMappings(list):
    """A dependency's index mappings, each run through the budget (refused when its
    growth so far predicts too many indices), then a step that charges the indices
    the edge carries and checks they lie inside the target layer's channels.

    Torch-Pruning walks ``dep.index_mapping`` as a plain sequence and only assigns its
    items, so this list subclass is the one seam to bound the walk (TP 1.6 has no
    public limit); it changes no mapping.
    """

    def __init__(self, items: Iterable[Any], budget: _Budget, limit: int | None, target: str):
        super().__init__(items)
        self.budget, self.limit, self.target = budget, limit, target

    def __iter__(self) -> Iterator[Any]:
        for mapping in list.__iter__(self):
            yield None if mapping is None else functools.partial(self.budget.call, mapping)
        yield self._tally

    def _tally(self, idxs: Sequence) -> Sequence:
        self.budget.spend(len(idxs))
        if self.limit is not None and any(i.idx >= self.limit for i in idxs):
            raise UnsupportedModelError(
                f"torch-pruning maps channel indices past the {self.limit} channels of "
                f"{self.target!r}: its shape inference misreads an operation before it"
            )
        return idxs


class GuardedGraph:
    """A Torch-Pruning dependency graph whose group walks are bounded (see module doc)."""

    def __init__(self, graph: tp.DependencyGraph, model: nn.Module, budget: int) -> None:
        self.graph = graph
        self._budget = _Budget(budget, type(model).__name__)
        names = {m: n for n, m in model.named_modules()}
        for node in graph.module2node.values():
            for dep in node.dependencies:
                limit = self._channels(dep)
                target = names.get(dep.target.module, str(dep.target.name))
                dep.index_mapping = _GuardedMappings(dep.index_mapping, self._budget, limit, target)

    def _channels(self, dep: Any) -> int | None:
        module = dep.target.module
        if not isinstance(module, nn.Module) or self.graph.get_pruner_of_module(module) is None:
            return None
        if self.graph.is_out_channel_pruning_fn(dep.handler):
            return self.graph.get_out_channels(module)
        if self.graph.is_in_channel_pruning_fn(dep.handler):
            return self.graph.get_in_channels(module)
        return None

    def groups(self, ignored: list[nn.Module], root_types: tuple[type, ...]) -> Iterator[Any]:
        """Every dependency group rooted at a layer of ``root_types`` (TP's get_all_groups)."""
        self._budget.reset()
        walk = self.graph.get_all_groups(ignored_layers=ignored, root_module_types=root_types)
        while True:
            with _quiet():
                group = next(walk, None)
            if group is None:
                return
            yield group
            self._budget.reset()

    def out_group(self, module: nn.Module, idxs: Sequence[int]) -> Any:
        """The group that removes output channels ``idxs`` of ``module``."""
        self._budget.reset()
        handler = self.graph.get_pruner_of_module(module).prune_out_channels
        with _quiet():
            return self.graph.get_pruning_group(module, handler, list(idxs))

    def is_out(self, handler: Callable) -> bool:
        return self.graph.is_out_channel_pruning_fn(handler)

    def is_in(self, handler: Callable) -> bool:
        return self.graph.is_in_channel_pruning_fn(handler)


def build_graph(
    model: nn.Module, example_input: torch.Tensor, budget: int = INDEX_BUDGET
) -> GuardedGraph:
    """Build a bounded Torch-Pruning dependency graph without changing the model's mode."""
    with preserved_mode(model), torch.enable_grad(), _quiet():
        try:
            graph = tp.DependencyGraph().build_dependency(model, example_input, verbose=False)
        except Exception as exc:  # torch-pruning raises bare exceptions on untraceable ops
            raise UnsupportedModelError(
                f"torch-pruning could not build the dependency graph of "
                f"{type(model).__name__} ({type(exc).__name__}: {exc}); operations such as "
                f"channel shuffle are not supported for channel pruning"
            ) from exc
    return GuardedGraph(graph, model, budget)
