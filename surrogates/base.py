"""What every forward model offers the layers above: names, units, domain and forward maps.

A trained surrogate and a reference solver expose the same interface, so a study can swap
``power.smib`` for ``power.smib:reference`` and nothing above notices.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["DomainError", "ForwardModel"]


class DomainError(ValueError):
    """An input lies outside the box the forward model is valid on."""


class ForwardModel(Protocol):
    name: str
    parameters: tuple[str, ...]
    conditions: tuple[str, ...]
    observables: tuple[str, ...]
    units: dict[str, str]
    card: dict | None

    def domain(self, conditions: dict[str, float]) -> dict[str, tuple[float, float]]:
        """Bounds of every parameter, condition and of ``t`` [s] given the known conditions."""

    def validation_rmse(self) -> dict[str, float]:
        """Root-mean-square error against the reference, per observable, in its unit."""

    def jax_forward(self, t_s: Any, **values: Any) -> dict[str, Any]:
        """Observables at times ``t_s`` as JAX arrays; differentiable in every value."""

    def numpy_forward(self, t_s: Any, **values: Any) -> dict[str, Any]:
        """Observables at times ``t_s`` as NumPy arrays."""
