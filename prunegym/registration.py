"""The Gymnasium ids of prunegym's environments, registered lazily.

``import prunegym`` must not import gymnasium (the pruning engine does not need it), yet
``gym.make("prunegym/ChannelPruning-v0", ...)`` must work after it. The ids are
registered with string entry points (nothing of :mod:`prunegym.envs` is imported until
an env is made): at once when gymnasium is already imported, otherwise right after
gymnasium's own import finishes, through a one-shot import hook (``sys.meta_path``).
Importing :mod:`prunegym.envs` registers them too.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

CHANNEL_ENV_ID = "prunegym/ChannelPruning-v0"
WEIGHT_ENV_ID = "prunegym/WeightPruning-v0"
ENV_IDS = (CHANNEL_ENV_ID, WEIGHT_ENV_ID)
ENTRY_POINTS = {
    CHANNEL_ENV_ID: "prunegym.envs.factory:channel_pruning_env",
    WEIGHT_ENV_ID: "prunegym.envs.factory:weight_pruning_env",
}


def register_envs() -> None:
    """Register the environment ids with Gymnasium (idempotent)."""
    import gymnasium as gym

    for env_id, entry_point in ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


class _RegisterAfterGymnasium(importlib.abc.MetaPathFinder):
    """Finds nothing itself: lets gymnasium load as usual, then registers the ids."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)  # one shot; the real finders locate gymnasium
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            register_envs()

        # only this spec's loader instance changes; the import machinery calls it once
        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


def register_when_gymnasium_loads() -> None:
    """Register now if gymnasium is imported, else as soon as it is."""
    if "gymnasium" in sys.modules:
        register_envs()
    elif not any(isinstance(f, _RegisterAfterGymnasium) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterGymnasium())
