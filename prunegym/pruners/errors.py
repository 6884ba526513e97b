"""Exceptions of the pruning engine; each names the problem in one sentence."""

from __future__ import annotations


class PruningError(ValueError):
    """A model, input or policy that the pruning engine cannot work with."""


class UnsupportedModelError(PruningError):
    """The model's structure cannot be traced or pruned safely."""
