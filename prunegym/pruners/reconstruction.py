"""AMC channel reconstruction: least-squares refit of layers whose inputs were pruned.

For a layer ``y = W x`` whose input channels lose a subset, AMC refits the weights
of the kept inputs so the layer's output on calibration features matches the dense
layer's: ``W_S = argmin ||X_S W_S^T - Y||``. The normal equations are accumulated
once per layer (``XᵀX`` and ``XᵀY``, bounded in memory: ``d x d`` and ``d x out``
with ``d = in_channels * kernel``), so each candidate only solves its kept
sub-system instead of re-running a regression over the features.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from prunegym.pruners.graph import preserved_mode
from prunegym.pruners.table import LayerTable


class Reconstructor:
    """Normal equations of every layer that consumes a unit's channels."""

    def __init__(
        self,
        model: nn.Module,
        table: LayerTable,
        batches: Iterable[torch.Tensor],
        samples_per_image: int = 10,
        max_dim: int = 4096,
        ridge: float = 1e-6,
        seed: int = 0,
    ) -> None:
        self.ridge = ridge
        modules = dict(model.named_modules())
        consumers = {m.name for u in table for m in u.members if m.direction == "in"}
        self._layers: dict[str, Any] = {}  # nn.Conv2d | nn.Linear (typed loosely for mypy)
        for name in sorted(consumers):
            module = modules[name]
            dim = module.weight[0].numel()
            fits = isinstance(module, nn.Linear) or (
                isinstance(module, nn.Conv2d) and module.groups == 1
            )
            if fits and dim <= max_dim:
                self._layers[name] = module
        self._xtx = {n: torch.zeros(m.weight[0].numel(), m.weight[0].numel(), dtype=torch.float64)
                     for n, m in self._layers.items()}  # fmt: skip
        self._xty = {n: torch.zeros(m.weight[0].numel(), m.weight.shape[0], dtype=torch.float64)
                     for n, m in self._layers.items()}  # fmt: skip
        self._collect(model, batches, samples_per_image, torch.Generator().manual_seed(seed))

    def covers(self, name: str) -> bool:
        return name in self._layers

    @property
    def layer_names(self) -> list[str]:
        return list(self._layers)

    def _collect(self, model, batches, per_image, gen) -> None:  # type: ignore[no-untyped-def]
        def hook(name: str):
            module = self._layers[name]

            def record(_m: nn.Module, inputs: tuple, _out: object) -> None:
                x = _features(module, inputs[0].detach(), per_image, gen).double().cpu()
                w = module.weight.detach().flatten(1).double().cpu()
                self._xtx[name] += x.T @ x
                self._xty[name] += x.T @ (x @ w.T)

            return record

        handles = [m.register_forward_hook(hook(n)) for n, m in self._layers.items()]
        try:
            with preserved_mode(model), torch.no_grad():
                model.eval()
                for batch in batches:
                    model(batch)
        finally:
            for h in handles:
                h.remove()

    def refit(self, name: str, removed_in: list[int], full: bool = False) -> torch.Tensor:
        """Refitted weight of layer ``name`` after its input channels ``removed_in`` go.

        With ``full`` the weight keeps its dense shape (zeros at removed inputs, for
        masked evaluation); otherwise only the kept input channels remain.
        """
        module = self._layers[name]
        weight = module.weight.detach()
        per_channel = weight[0, 0].numel() if weight.dim() > 2 else 1
        in_total = weight.shape[1]
        removed = np.zeros(in_total, dtype=bool)
        removed[np.asarray(sorted(set(removed_in)), dtype=np.int64)] = True
        cols = torch.from_numpy(np.repeat(~removed, per_channel))
        a = self._xtx[name][cols][:, cols]
        b = self._xty[name][cols]
        scale = float(a.diagonal().mean()) if a.numel() else 1.0
        a = a + self.ridge * max(scale, 1e-12) * torch.eye(a.shape[0], dtype=a.dtype)
        solved = torch.linalg.solve(a, b).T.to(weight.dtype).to(weight.device)  # out x kept
        kept_shape = (weight.shape[0], int((~removed).sum()), *weight.shape[2:])
        if not full:
            return solved.reshape(kept_shape)
        dense = torch.zeros_like(weight).flatten(1)
        dense[:, cols.to(weight.device)] = solved
        return dense.reshape(weight.shape)


def _features(module: Any, x: torch.Tensor, per_image: int, gen: torch.Generator) -> torch.Tensor:
    """Rows of the layer's input as the weight sees them: (samples, in * kernel)."""
    if isinstance(module, nn.Linear):
        rows = x.reshape(-1, x.shape[-1])
        count = min(rows.shape[0], per_image * x.shape[0]) if x.dim() > 2 else rows.shape[0]
        idx = torch.randperm(rows.shape[0], generator=gen)[:count]
        return rows[idx.to(rows.device)]
    patches = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
    n, d, positions = patches.shape
    take = min(per_image, positions)
    idx = torch.stack([torch.randperm(positions, generator=gen)[:take] for _ in range(n)])
    picked = torch.gather(patches, 2, idx.to(x.device)[:, None, :].expand(n, d, take))
    return picked.permute(0, 2, 1).reshape(-1, d)
