"""``power.smib`` (the trained PINN) and ``power.smib:reference`` (the ODE solved exactly)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from surrogates.base import DomainError
from surrogates.pinn.card import load_residuals, load_weights
from surrogates.power import smib, smib_reference
from surrogates.power.smib_pinn import WEIGHTS, predict

__all__ = ["SmibReference", "SmibSurrogate"]


class _SmibBase:
    parameters = smib.PARAMETERS
    conditions = smib.CONDITIONS
    observables = smib.OBSERVABLES
    units = smib.UNITS

    def domain(self, conditions: dict[str, float]) -> dict[str, tuple[float, float]]:
        B = conditions.get("B", smib.B_TRAIN)
        if not (isinstance(B, (int, float)) and B > 0):
            raise DomainError(f"B: found {B!r}, expected a positive number")
        return smib.domain_for(float(B))


class SmibSurrogate(_SmibBase):
    """The parametric PINN; ``m, d, P`` at any ``B`` reach the trained box by exact rescaling."""

    name = "power.smib"
    # The error model a study gets by default: over 20 truths its 90 % intervals held the truth
    # 37 of 40 times with it and 31 of 40 with the RMSE in quadrature (case_studies/exactness).
    surrogate_error = "correlated"

    def __init__(self, path: Path = WEIGHTS):
        self._path = Path(path)
        weights, self.card = load_weights(path)
        self._weights = weights
        self._n_layers = self.card["architecture"]["n_layers"]

    def validation_rmse(self) -> dict[str, float]:
        return {k: v["overall"] for k, v in self.card["validation"]["rmse"].items()}

    def validation_residuals(self, conditions: dict) -> dict:
        """The card's held-out residual curves: ``grid`` (T,) their times [s] (``times_s`` the
        same for each curve, (K, T)), ``inputs`` {name: (K,)} in the study's units and
        ``residuals`` {observable: (K, T)}.

        The curves were measured at B = 0.2; at another B the same curves belong to the inputs
        scaled by B / 0.2 (m, d and P scale with B; angle, frequency and time do not).
        """
        arrays = load_residuals(self._path, self.card)
        scale = conditions.get("B", smib.B_TRAIN) / smib.B_TRAIN
        inputs = {
            k: arrays[k] * (scale if k in ("m", "d", "P") else 1.0)
            for k in ("m", "d", "P", "delta0", "omega0")
        }
        residuals = {obs: arrays[f"residual: {obs}"] for obs in self.observables}
        times = np.broadcast_to(arrays["times_s"], (len(arrays["m"]), len(arrays["times_s"])))
        return {"grid": arrays["times_s"], "times_s": times, "inputs": inputs, "residuals": residuals}

    def numpy_forward(self, t_s, **values):
        return predict(np, self._weights, self._n_layers, np.asarray(t_s, float), **values)

    def trust_flags(self, t_s, conditions: dict, draws: dict) -> list[str]:
        """A flag when the posterior's trajectories come near slipping a pole, in a band of saddle
        margin where the card measured the surrogate's p95 angle RMSE above twice that far from it."""
        table = self.card["validation"].get("by_saddle_margin")
        if not table:
            return []
        angle = self.numpy_forward_batch(t_s, conditions, draws)[smib.OBSERVABLES[0]]
        B = conditions.get("B", smib.B_TRAIN)
        margin = float(np.median(smib.saddle_margin(angle, conditions["P"], B)))
        far = table["bins"][-1]["p95"]
        for row in table["bins"]:
            lo, hi = row["margin_rad"]
            if margin < (math.inf if hi is None else hi):
                if row.get("p95", math.inf) <= 2 * far:
                    return []
                saddle = math.pi - math.asin(conditions["P"] / B)
                flag = (
                    f"the posterior's trajectories come within {margin:.2f} rad of the unstable equilibrium "
                    f"(angle {saddle:.2f} rad): on held-out trajectories {lo:g}–{hi:g} rad from it the "
                    f"surrogate's angle RMSE is {row['p95']:.2g} rad (p95) against {far:.2g} rad farther "
                    "away; check the run with --check-reference"
                )
                return [flag]
        return []

    def numpy_forward_batch(self, t_s, conditions: dict, values: dict) -> dict:
        """Observables (n, len(t_s)) at n parameter sets ({name: (n,)}), broadcast in one call."""
        columns = {k: np.asarray(v, float)[:, None] for k, v in values.items()}
        t = np.asarray(t_s, float)[None, :]
        out = predict(np, self._weights, self._n_layers, t, **conditions, **columns)
        return {k: np.broadcast_to(v, (len(next(iter(values.values()))), t.shape[1])) for k, v in out.items()}

    def jax_forward(self, t_s, **values):
        import jax.numpy as jnp

        # NumPy weights enter a JAX trace as constants; caching jnp copies would leak tracers.
        return predict(jnp, self._weights, self._n_layers, jnp.asarray(t_s), **values)

    def torch_forward(self, t_s, **values):
        import torch

        w = {k: torch.from_numpy(v) for k, v in self._weights.items()}
        return predict(torch, w, self._n_layers, torch.as_tensor(t_s, dtype=torch.float64), **values)


class SmibReference(_SmibBase):
    """The swing equation itself: ``solve_ivp`` for NumPy, diffrax for JAX (no trained box)."""

    name = "power.smib:reference"
    card = None

    def domain(self, conditions):
        box = super().domain(conditions)
        # The ODE holds for any positive m, d; only the time window is bounded by the data.
        return {**box, "m": (0.0, math.inf), "d": (0.0, math.inf), "t": (0.0, math.inf)}

    def validation_rmse(self):
        return {k: 0.0 for k in self.observables}

    def numpy_forward(self, t_s, **values):
        return smib_reference.solve(t_s, **values)

    def numpy_forward_batch(self, t_s, conditions: dict, values: dict) -> dict:
        """Observables (n, len(t_s)) at n parameter sets, one vectorised ODE solve."""
        return smib_reference.solve_many(t_s, **conditions, **values)

    def jax_forward(self, t_s, **values):
        return smib_reference.solve_jax(t_s, **values)
