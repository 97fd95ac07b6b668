"""Seeded draws from discrete distributions, shared by the demo and benchmark generators."""

from __future__ import annotations

import numpy as np


def normalised(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def cdf(weights: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(weights, dtype=np.float64)
    return cumulative / cumulative[-1]


def sample_cdf(rng: np.random.Generator, cdf_values: np.ndarray, n: int) -> np.ndarray:
    """n indices drawn with replacement from the distribution with this CDF."""
    return np.minimum(np.searchsorted(cdf_values, rng.random(n), side="right"), len(cdf_values) - 1)
