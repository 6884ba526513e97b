"""Measured inference latency: warm-up, then the median of repeated timed runs."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from prunegym.pruners.graph import preserved_mode


@dataclass(frozen=True)
class Latency:
    """Milliseconds per forward pass of one batch, with the conditions measured under."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    batch_size: int
    threads: int
    device: str

    def as_dict(self) -> dict:
        return asdict(self)


def measure_latency(
    model: nn.Module,
    example_input: torch.Tensor,
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
) -> Latency:
    """Time ``model(example_input)`` in eval mode under ``torch.inference_mode``.

    ``threads`` sets torch's intra-op threads for the measurement (restored after);
    CUDA work is synchronised before each clock read.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    device = example_input.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    try:
        with preserved_mode(model), torch.inference_mode():
            model.eval()
            for _ in range(warmup):
                model(example_input)
            sync()
            for _ in range(repeats):
                start = time.perf_counter()
                model(example_input)
                sync()
                times.append((time.perf_counter() - start) * 1e3)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    deciles = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
    return Latency(statistics.median(times), deciles[0], deciles[-1], repeats,
                   int(example_input.shape[0]), used, str(device))  # fmt: skip
