"""AMC's exploration noise as a Stable-Baselines3 ``ActionNoise``.

AMC (He et al. 2018) samples each action from a normal distribution centred on the
actor's output and truncated to the action bounds, with a standard deviation ``sigma``
that starts at 0.5 of its [0, 1] action range and is multiplied by 0.95 after every
episode once the warm-up is over (0.5 * 0.95**60 ~= 0.023: after about 60 episodes the
agent barely explores). prunegym's actions span [-1, 1], so the same relative width is
sigma 1.0 (the default of :func:`~prunegym.agents.factory.make_agent`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from stable_baselines3.common.noise import ActionNoise, VectorizedActionNoise


class TruncatedNormalNoise(ActionNoise):
    """Truncated-normal exploration noise whose sigma decays once per episode.

    ``reset()`` is what SB3 calls at the end of every episode; the first
    ``warmup_episodes`` resets do not decay sigma (the warm-up plays uniform random
    actions). After ``stop_after`` decayed episodes (or once sigma falls below
    ``sigma_min``) sigma is exactly 0, as in the reference code that stops exploring.

    Used as a plain ``ActionNoise`` (``noise()``) it returns normal noise truncated to
    ``[-bound, bound]``, which SB3 adds to the action and clips. The AMC algorithms of
    :mod:`prunegym.agents.factory` call :meth:`perturb` instead, which samples around the
    action truncated to the action bounds themselves (no mass piles up on the bounds).
    """

    def __init__(
        self,
        shape: tuple[int, ...] = (1,),
        sigma: float = 0.5,
        decay: float = 0.95,
        warmup_episodes: int = 0,
        sigma_min: float = 0.0,
        stop_after: int | None = None,
        bound: float = 2.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if sigma < 0 or not 0 < decay <= 1 or warmup_episodes < 0 or sigma_min < 0 or bound <= 0:
            raise ValueError(
                "TruncatedNormalNoise needs sigma >= 0, 0 < decay <= 1, warmup_episodes >= 0, "
                "sigma_min >= 0 and bound > 0"
            )
        self.shape = tuple(shape)
        self.sigma0 = float(sigma)
        self.decay = float(decay)
        self.warmup_episodes = int(warmup_episodes)
        self.sigma_min = float(sigma_min)
        self.stop_after = None if stop_after is None else int(stop_after)
        self.bound = float(bound)
        self.episodes = 0
        self.rng = np.random.default_rng(seed)

    @property
    def sigma(self) -> float:
        """The standard deviation used for the current episode."""
        decayed = max(0, self.episodes - self.warmup_episodes)
        if self.stop_after is not None and decayed >= self.stop_after:
            return 0.0
        sigma = self.sigma0 * self.decay**decayed
        return 0.0 if sigma < self.sigma_min else sigma

    def reset(self) -> None:
        """End of an episode: one more episode towards the decay."""
        self.episodes += 1

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def _truncated(self, low: np.ndarray, high: np.ndarray, sigma: float) -> np.ndarray:
        """Samples of N(0, sigma) truncated to [low, high] (elementwise), by inverse CDF."""
        if sigma == 0.0:
            return np.clip(np.zeros_like(low), low, high)
        cdf_lo = _normal_cdf(low / sigma)
        cdf_hi = _normal_cdf(high / sigma)
        u = self.rng.uniform(size=low.shape)
        p = np.clip(cdf_lo + u * (cdf_hi - cdf_lo), 1e-12, 1 - 1e-12)
        return np.clip(sigma * _normal_ppf(p), low, high)

    def __call__(self) -> np.ndarray:
        bound = np.full(self.shape, self.bound)
        return self._truncated(-bound, bound, self.sigma).astype(np.float32)

    def perturb(self, action: np.ndarray, low: float = -1.0, high: float = 1.0) -> np.ndarray:
        """``action`` plus noise, sampled from N(action, sigma) truncated to [low, high]."""
        action = np.clip(np.asarray(action, dtype=np.float64), low, high)
        noise = self._truncated(low - action, high - action, self.sigma)
        return np.clip(action + noise, low, high).astype(np.float32)

    def __repr__(self) -> str:
        return (
            f"TruncatedNormalNoise(sigma={self.sigma:.4g}, sigma0={self.sigma0}, "
            f"decay={self.decay}, warmup_episodes={self.warmup_episodes}, "
            f"episodes={self.episodes})"
        )


def base_noise(noise: Any) -> Any:
    """The noise itself: SB3 wraps an agent's noise in a ``VectorizedActionNoise`` (one
    copy per env) when it learns on several envs; the AMC algorithms use the one noise
    they were given for every env (one sigma, one random stream), so they unwrap it."""
    return noise.base_noise if isinstance(noise, VectorizedActionNoise) else noise


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)))


def _normal_ppf(p: np.ndarray) -> np.ndarray:
    """Inverse standard-normal CDF (Acklam's rational approximation + one Newton step)."""
    p = np.asarray(p, dtype=np.float64)
    a = [-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00]  # fmt: skip
    b = [-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01]  # fmt: skip
    c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00]  # fmt: skip
    d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00]  # fmt: skip
    x = np.empty_like(p)
    lo, hi = p < 0.02425, p > 1 - 0.02425
    mid = ~(lo | hi)
    q = np.sqrt(-2 * np.log(p[lo]))
    x[lo] = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
        (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
    )
    q = np.sqrt(-2 * np.log(1 - p[hi]))
    x[hi] = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
        (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
    )
    q = p[mid] - 0.5
    r = q * q
    x[mid] = (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )
    # one Newton refinement
    err = _normal_cdf(x) - p
    x = x - err * math.sqrt(2 * math.pi) * np.exp(x * x / 2)
    return x
