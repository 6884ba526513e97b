"""The one allow-list of model builders a saved pruned model may name.

A pruned-model file is data: it may name the builder of its dense architecture, but
:func:`resolve_builder` only ever returns a builder on this list (in the spirit of
``torch.serialization.add_safe_globals``): prunegym's model zoo and torchvision's
classification constructors. Any other name is refused before anything is imported,
so a file naming ``"os:system"`` runs nothing. The zoo is named by its import path
(not imported here: the engine does not depend on the experiments package).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from prunegym.pruners.errors import PruningError

ZOO_BUILDER = "prunegym.experiments.models:build_model"
TORCHVISION_PREFIX = "torchvision.models:"
ALLOWED = (ZOO_BUILDER, f"{TORCHVISION_PREFIX}<classification model>")
"""What ``builder`` strings may be: the zoo, or ``torchvision.models:<name>``."""

Builder = Callable[..., nn.Module]


def _torchvision_classifier(name: str) -> Builder | None:
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        return None

    def build(**kwargs: Any) -> nn.Module:
        if kwargs.get("weights") is not None:
            raise PruningError(
                f"builder torchvision.models:{name} asks for weights {kwargs['weights']!r}; a "
                f"saved model carries its own weights (weights must be None)"
            )
        return torchvision.models.get_model(name, **{**kwargs, "weights": None})

    return build


def resolve_builder(target: str) -> Builder:
    """The allow-listed builder named ``target``; PruningError (nothing imported) otherwise."""
    builder: Builder | None = None
    if target == ZOO_BUILDER:
        module, _, attr = ZOO_BUILDER.partition(":")
        builder = getattr(importlib.import_module(module), attr)  # the one allow-listed zoo
    elif target.startswith(TORCHVISION_PREFIX):
        builder = _torchvision_classifier(target[len(TORCHVISION_PREFIX) :])
    if builder is None:
        raise PruningError(
            f"model builder {target!r} is not on the allow-list ({', '.join(ALLOWED)}): pass "
            f"model= (a freshly built dense model) or builder= (a callable) to load_pruned"
        )
    return builder


def check_builder(target: str) -> None:
    """Raise PruningError unless ``target`` names an allow-listed builder."""
    resolve_builder(target)


def call_builder(builder: Builder, kwargs: Mapping[str, Any], label: str) -> nn.Module:
    """``builder(**kwargs)``, its argument errors as one PruningError line."""
    try:
        model = builder(**dict(kwargs))
    except (TypeError, ValueError) as exc:
        raise PruningError(f"model builder {label} failed with {dict(kwargs)}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise PruningError(f"model builder {label} returned {type(model).__name__}, no module")
    return model
