"""Prior specifications and their NumPyro distributions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["KINDS", "Prior", "distribution"]

KINDS = ("uniform", "loguniform", "normal", "lognormal", "truncated_normal")


@dataclass(frozen=True)
class Prior:
    """A prior on one parameter, in the parameter's physical unit.

    ``uniform``/``loguniform`` use ``lower``/``upper``; ``normal`` uses ``loc``/``scale``;
    ``lognormal`` uses ``loc``/``scale`` of log θ; ``truncated_normal`` uses all four.
    """

    kind: str
    lower: float = -math.inf
    upper: float = math.inf
    loc: float = 0.0
    scale: float = 1.0

    def support(self) -> tuple[float, float]:
        """The interval holding all prior mass (infinite where the prior is unbounded)."""
        if self.kind == "lognormal":
            return (0.0, math.inf)
        if self.kind == "normal":
            return (-math.inf, math.inf)
        return (self.lower, self.upper)

    def quantile(self, u):
        """The prior's quantile function at ``u`` ∈ (0, 1) (NumPy), to lay out a search design."""
        from scipy import stats

        u = np.asarray(u, float)
        k = self.kind
        if k == "uniform":
            return self.lower + u * (self.upper - self.lower)
        if k == "loguniform":
            return self.lower * (self.upper / self.lower) ** u
        if k == "normal":
            return stats.norm.ppf(u, self.loc, self.scale)
        if k == "lognormal":
            return np.exp(stats.norm.ppf(u, self.loc, self.scale))
        a, b = (self.lower - self.loc) / self.scale, (self.upper - self.loc) / self.scale
        return stats.truncnorm.ppf(u, a, b, self.loc, self.scale)


def distribution(prior: Prior):
    """NumPyro distribution; NUTS samples it in the unconstrained space of its support."""
    import numpyro.distributions as dist

    k = prior.kind
    if k == "uniform":
        return dist.Uniform(prior.lower, prior.upper)
    if k == "loguniform":
        return dist.LogUniform(prior.lower, prior.upper)
    if k == "normal":
        return dist.Normal(prior.loc, prior.scale)
    if k == "lognormal":
        return dist.LogNormal(prior.loc, prior.scale)
    if k == "truncated_normal":
        return dist.TruncatedNormal(prior.loc, prior.scale, low=prior.lower, high=prior.upper)
    raise ValueError(f"prior: found {k!r}, expected one of {', '.join(KINDS)}")
