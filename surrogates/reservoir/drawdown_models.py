"""``reservoir.drawdown`` (the trained PINN) and ``reservoir.drawdown:reference`` (the exponential
integral itself), sharing the well-test physics of ``wells``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np

from surrogates.pinn.card import load_weights
from surrogates.reservoir import wells
from surrogates.reservoir.drawdown_pinn import WEIGHTS, half_e1, predict, reference_half_e1

__all__ = ["DrawdownReference", "DrawdownSurrogate"]

# A drawdown record may sit this far above the initial pressure (noise) before it is called wrong.
_ABOVE_INITIAL = 0.005
# Radius of investigation r = 0.029·sqrt(k·t/(φ·μ·c_t)) [ft] (t in h), the usual field rule.
_R_INVESTIGATION = 0.029


class _DrawdownBase:
    parameters = wells.PARAMETERS
    conditions = wells.CONDITIONS
    observables = (wells.OBSERVABLE,)
    units: ClassVar[dict[str, str]] = wells.UNITS
    defaults: ClassVar[dict[str, float]] = {"production_time": 0.0}  # a drawdown unless given
    time_unit = "h"  # simulated records are written in hours, as gauges report them
    first_time_s = wells.DOMAIN["t"][0]

    def domain(self, conditions: dict[str, float]) -> dict[str, tuple[float, float]]:
        return dict(wells.DOMAIN)

    def plausible(self, conditions: dict[str, float]) -> dict[str, tuple[float, float]]:
        """A well's pressure lies between 0 and the initial pressure (plus noise room)."""
        return {wells.OBSERVABLE: (0.0, conditions["initial_pressure"] * (1 + _ABOVE_INITIAL))}

    def default_times(self, **values) -> np.ndarray:
        """A gauge's record: 60 times log-spaced from 0.01 h to 100 h (since shut-in for a buildup)."""
        return np.geomspace(self.first_time_s, 360_000.0, 60)

    def posterior_flags(self, t_s, conditions: dict, draws: dict, bounds: dict) -> list[str]:
        """The fault distance, when the data only bound it from below.

        The boundary shows in the pressure only once the transient reaches it: a posterior whose
        upper tail runs into the prior's upper bound says "no fault closer than this", not "a
        fault at this distance". The message gives that distance and how far the last record's
        transient reached (its radius of investigation).
        """
        if "fault_distance" not in draws:
            return []
        lo, hi = bounds["fault_distance"]
        q05, q95 = np.quantile(draws["fault_distance"], [0.05, 0.95])
        if math.log(q95) < math.log(lo) + 0.9 * (math.log(hi) - math.log(lo)):
            return []
        k = np.median(draws.get("permeability", conditions.get("permeability", np.nan)))
        t_h = float(np.max(t_s)) / 3600.0 + conditions.get("production_time", 0.0)
        reach = _R_INVESTIGATION * math.sqrt(
            k * t_h / (conditions["porosity"] * conditions["viscosity"] * conditions["total_compressibility"])
        )
        flag = (
            f"fault_distance is only bounded from below: the data rule out a sealing fault closer than "
            f"{q05:.0f} ft (5 % quantile), but the posterior runs up to the prior's bound {hi:g} ft; the "
            f"transient had reached about {reach:.0f} ft (radius of investigation) by the last record"
        )
        return [flag]

    def numpy_forward(self, t_s, **values):
        return predict(np, self._ez(np), np.asarray(t_s, float), **{**self.defaults, **values})

    def numpy_forward_batch(self, t_s, conditions: dict, values: dict) -> dict:
        """Observables (n, len(t_s)) at n parameter sets ({name: (n,)}), broadcast in one call."""
        columns = {k: np.asarray(v, float)[:, None] for k, v in values.items()}
        t = np.asarray(t_s, float)[None, :]
        out = predict(np, self._ez(np), t, **{**self.defaults, **conditions, **columns})
        n = len(next(iter(values.values())))
        return {k: np.broadcast_to(v, (n, t.shape[1])) for k, v in out.items()}

    def jax_forward(self, t_s, **values):
        import jax.numpy as jnp

        return predict(jnp, self._ez(jnp), jnp.asarray(t_s), **{**self.defaults, **values})


class DrawdownSurrogate(_DrawdownBase):
    """The PINN of the line-source problem in the Boltzmann variable, inside the well-test physics."""

    name = "reservoir.drawdown"

    def __init__(self, path: Path = WEIGHTS):
        self._weights, self.card = load_weights(path)
        self._n_layers = self.card["architecture"]["n_layers"]

    def validation_rmse(self) -> dict[str, float]:
        return {}  # the error is relative: see surrogate_sd

    def surrogate_sd(self, conditions: dict, values: dict) -> dict[str, np.ndarray]:
        """The surrogate-error σ [psi] of each reading: the card's relative RMSE × its pressure drop."""
        relative = self.card["validation"]["relative_rmse"]["overall"]
        y = values[wells.OBSERVABLE]
        return {wells.OBSERVABLE: relative * np.abs(conditions["initial_pressure"] - y)}

    def _ez(self, xp):
        return half_e1(xp, self._weights, self._n_layers)


class DrawdownReference(_DrawdownBase):
    """The line source with SciPy's (NumPy) or JAX's exponential integral: exact for this model."""

    name = "reservoir.drawdown:reference"
    card = None

    def validation_rmse(self):
        return {wells.OBSERVABLE: 0.0}

    def _ez(self, xp):
        return reference_half_e1(xp)
