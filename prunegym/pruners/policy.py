"""The hand-off object between search and surgery: unit name -> sparsity."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prunegym.pruners.errors import PruningError

if TYPE_CHECKING:
    from prunegym.pruners.table import LayerTable

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PruningPolicy:
    """Per-unit sparsities plus how they are realised.

    ``sparsities`` maps unit names to the fraction of channels (or weights) to remove;
    units not listed keep everything. ``signature`` identifies the LayerTable the
    policy was made for, so it cannot silently be applied to another model.
    """

    sparsities: Mapping[str, float]
    granularity: str = "channel"
    importance: str = "l1"
    round_to: int = 8
    signature: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.granularity not in ("channel", "weight"):
            raise PruningError(
                f"granularity must be 'channel' or 'weight', got {self.granularity!r}"
            )
        if int(self.round_to) < 1:
            raise PruningError(f"round_to must be >= 1, got {self.round_to}")
        clean = {}
        for name, value in self.sparsities.items():
            s = float(value)
            if not (math.isfinite(s) and 0.0 <= s < 1.0):
                raise PruningError(f"sparsity of unit {name!r} must be in [0, 1), got {value}")
            clean[str(name)] = s
        object.__setattr__(self, "sparsities", clean)

    # construction -----------------------------------------------------------------
    @classmethod
    def uniform(cls, table: LayerTable, sparsity: float, **options: Any) -> PruningPolicy:
        """The same sparsity for every prunable unit of ``table``."""
        return cls.from_array(table, np.full(len(table), sparsity), **options)

    @classmethod
    def from_array(cls, table: LayerTable, sparsities: Any, **options: Any) -> PruningPolicy:
        """A policy from one sparsity per unit, in the table's execution order."""
        values = np.asarray(sparsities, dtype=np.float64).reshape(-1)
        if values.size != len(table):
            raise PruningError(
                f"expected {len(table)} sparsities (one per unit), got {values.size}"
            )
        options.setdefault("granularity", table.granularity)
        return cls(dict(zip(table.names, values.tolist(), strict=True)),
                   signature=table.signature, **options)  # fmt: skip

    # use --------------------------------------------------------------------------
    def validate(self, table: LayerTable) -> None:
        """Raise PruningError if this policy was not made for ``table``."""
        if self.granularity != table.granularity:
            raise PruningError(
                f"policy is for {self.granularity} pruning but the table is {table.granularity}"
            )
        if self.signature is not None and self.signature != table.signature:
            raise PruningError(
                f"policy was made for another model (signature {self.signature}, "
                f"this model's is {table.signature})"
            )
        known = set(table.names)
        for name in self.sparsities:
            if name not in known:
                raise PruningError(f"unit {name!r} is not a prunable unit of this model")

    def as_array(self, table: LayerTable) -> np.ndarray:
        """Sparsities in the table's unit order (0 for units the policy does not list)."""
        self.validate(table)
        return np.array([self.sparsities.get(n, 0.0) for n in table.names], dtype=np.float64)

    def kept(self, table: LayerTable) -> dict[str, int]:
        """Kept channels (or weights) of every unit after rounding."""
        counts = table.kept_counts(self.as_array(table), self.round_to)
        return dict(zip(table.names, counts.tolist(), strict=True))

    # serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "granularity": self.granularity,
            "importance": self.importance,
            "round_to": int(self.round_to),
            "signature": self.signature,
            "sparsities": dict(self.sparsities),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruningPolicy:
        if not isinstance(data, Mapping) or "sparsities" not in data:
            raise PruningError("not a prunegym policy: no 'sparsities' mapping")
        return cls(
            sparsities=data["sparsities"],
            granularity=data.get("granularity", "channel"),
            importance=data.get("importance", "l1"),
            round_to=int(data.get("round_to", 8)),
            signature=data.get("signature"),
            meta=data.get("meta", {}),
        )

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The policy as JSON; with ``path`` also written there atomically."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            from prunegym.utils.files import atomic_write_text

            atomic_write_text(Path(path), text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> PruningPolicy:
        """Read a policy from a JSON string or a JSON file."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            path = Path(text_or_path)
            if not path.is_file():
                raise PruningError(f"policy file {path} does not exist")
            text = path.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PruningError(f"policy is not valid JSON: {exc}") from exc
        return cls.from_dict(data)
