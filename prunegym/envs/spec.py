"""An env spec that holds, and never copies, the objects an env was made with.

``gym.make(id, model=..., data=...)`` stores the make kwargs in ``env.spec``; every
Gymnasium wrapper deep-copies its inner env's spec to add itself to it, so a plain
:class:`~gymnasium.envs.registration.EnvSpec` would copy the caller's model (and any
dataset or evaluator passed) once per wrapper. :class:`SharedSpec` is an ``EnvSpec``
whose deep copy is a new spec over a new kwargs dict holding the *same* objects.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gymnasium.envs.registration import EnvSpec


class SharedSpec(EnvSpec):
    """An ``EnvSpec`` whose deep copy shares the make kwargs' values (see the module)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedSpec:
        return dataclasses.replace(self, kwargs=dict(self.kwargs))


def shared_spec(spec: EnvSpec | None) -> EnvSpec | None:
    """``spec`` as a :class:`SharedSpec` (``None`` stays ``None``)."""
    if spec is None or isinstance(spec, SharedSpec):
        return spec
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.init}
    return SharedSpec(**fields)
