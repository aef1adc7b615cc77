"""Spherical diffusion under a constant surface flux: the part of the SPM a network learns.

With constant current, each particle of the SPM solves, in r̃ = r/R and τ = D t / R²,

    F_τ = F_r̃r̃ + (2/r̃) F_r̃,    F(r̃, 0) = 0,    F_r̃(0, τ) = 0,    F_r̃(1, τ) = 1,

and its stoichiometry is x = x0 + A·F (``chen2020.particle_rates`` gives τ's rate and A). So
one function of two variables serves both particles at every scale and C-rate: the diffusivity
scale and the current move τ and A, not F's shape.

F is written as three parts, each doing what it does best:

- ``lead``: the early-time solution near the surface, (2√τ/r̃)[ierfc((1−r̃)/2√τ) − ierfc((1+r̃)/2√τ)].
  It solves the equation exactly, starts at 0, and carries the √τ rise of the surface
  concentration (the "cliff" of a slow particle lives in this regime);
- ``τ·[planar + N(r̃², √τ, ζ)]``: ``planar`` = 4·i²erfc((1−r̃)/2√τ) (+ mirror) answers, as in a
  slab, the part of the surface flux the lead term misses (2√τ/√π); N, the network, trained on
  the residual and the flux condition, adds what the sphere's curvature changes. τ· keeps the
  initial condition exact, r̃² keeps F even in r̃, and ζ = erfc((1−r̃)/2√τ) + erfc((1+r̃)/2√τ)
  hands it the thin surface layer it could not resolve from (r̃, √τ) alone. Without ``planar``
  the network's N was 1.3e-3 off at the surface for small τ, which moved the cut-off of a slow
  cell by 1e-4;
- ``steady``: 3τ + r̃²/2 − 3/10, the exact long-time solution (the slowest transient decays as
  e^(−20.19 τ)); from τ = 0.75 to 1 the network hands over to it through a smooth step.
"""

from __future__ import annotations

import functools
import math
from typing import Any

__all__ = [
    "BLEND_TAU",
    "TAU_MAX",
    "encode",
    "erfc_of",
    "lead",
    "lead_surface",
    "series_surface",
    "steady",
    "step_response_matrix",
    "surface",
]

TAU_MAX = 1.0  # the network's domain in τ; past it F is the steady solution
BLEND_TAU = (0.75, 1.0)
_SQRT_PI = math.sqrt(math.pi)
_TINY_TAU = 1e-30  # keeps √τ and its gradient finite at t = 0


def erfc_of(xp: Any):
    """erfc in the namespace ``xp`` (NumPy, torch or jax.numpy)."""
    name = getattr(xp, "__name__", "")
    if name == "torch":
        return xp.special.erfc
    if name.startswith("jax"):
        import jax.scipy.special

        return jax.scipy.special.erfc
    import scipy.special

    return scipy.special.erfc


def _ierfc(xp: Any, x):
    # ∫_x^∞ erfc; arguments are clipped at 30 where it is 0 to double precision (and x·erfc(x)
    # would be ∞·0).
    x = xp.clip(x, None, 30.0)
    return xp.exp(-x * x) / _SQRT_PI - x * erfc_of(xp)(x)


def root_tau(xp: Any, tau):
    return xp.sqrt(tau + _TINY_TAU)


def lead(xp: Any, r, tau):
    s = root_tau(xp, tau)
    return 2.0 * s / r * (_ierfc(xp, (1.0 - r) / (2.0 * s)) - _ierfc(xp, (1.0 + r) / (2.0 * s)))


def lead_surface(xp: Any, tau):
    s = root_tau(xp, tau)
    return 2.0 * s * (1.0 / _SQRT_PI - _ierfc(xp, 1.0 / s))


def flux_deficit(xp: Any, tau):
    """1 − ∂F_lead/∂r̃ at the surface: the flux the network must add."""
    s = root_tau(xp, tau)
    return 2.0 * s / _SQRT_PI - erfc_of(xp)(xp.clip(1.0 / s, None, 30.0)) - 2.0 * s * _ierfc(xp, 1.0 / s)


def planar(xp: Any, r, s):
    """4·i²erfc((1−r̃)/2s) + its mirror at −r̃: the planar answer to the lead term's missing flux
    (2s/√π at the surface), so the network only adds the curvature's correction to it."""
    total = 0.0
    for x in ((1.0 - r) / (2.0 * s), (1.0 + r) / (2.0 * s)):
        total = total + erfc_of(xp)(xp.clip(x, None, 30.0)) - 2.0 * x * _ierfc(xp, x)
    return total


def layer(xp: Any, r, s):
    erfc = erfc_of(xp)
    return erfc((1.0 - r) / (2.0 * s)) + erfc((1.0 + r) / (2.0 * s))


def encode(xp: Any, r2, s, zeta):
    """Network input in [-1, 1]³ from (r̃², √τ, ζ)."""
    return xp.stack([2.0 * r2 - 1.0, 2.0 * s / math.sqrt(TAU_MAX) - 1.0, zeta - 1.0], -1)


def steady(r, tau):
    return 3.0 * tau + 0.5 * r * r - 0.3


def _smoothstep(xp: Any, tau):
    lo, hi = BLEND_TAU
    u = xp.clip((tau - lo) / (hi - lo), 0.0, 1.0)
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))  # C² step


def surface(xp: Any, network, tau):
    """F(1, τ) for any τ ≥ 0; ``network(x)`` maps encoded inputs (..., 3) to N (..., 1)."""
    t_net = xp.clip(tau, None, TAU_MAX)
    s = root_tau(xp, t_net)
    ones = 0.0 * s + 1.0
    n = planar(xp, ones, s) + network(encode(xp, ones, s, layer(xp, ones, s)))[..., 0]
    learned = lead_surface(xp, t_net) + t_net * n
    w = _smoothstep(xp, tau)
    return (1.0 - w) * learned + w * steady(1.0, tau)


def series_surface(tau, n_terms: int = 20_000):
    """F(1, τ) from the eigenfunction series (NumPy), the independent check of the network:
    3τ + 1/5 − Σ 2/λ² e^(−λ²τ) over the roots of tan λ = λ."""
    import numpy as np
    from scipy.optimize import brentq

    lam = np.array(
        [
            brentq(lambda x: np.tan(x) - x, (k + 1e-9) * np.pi, (k + 0.5 - 1e-9) * np.pi)
            for k in range(1, n_terms + 1)
        ]
    )
    tau = np.asarray(tau, float)
    decay = np.exp(-np.multiply.outer(tau, lam**2))
    return 3.0 * tau + 0.2 - decay @ (2.0 / lam**2)


_STEADY_TAU = 2.0  # past it F(1, τ) = 3τ + 1/5 to 1e-17 (the slowest term decays as e^(−20.19 τ))


@functools.cache
def _surface_table() -> tuple:
    """(√τ, F(1, τ), ∫_0^τ F(1, τ') dτ') on 3,001 points up to ``_STEADY_TAU``, from
    ``series_surface`` (F is linear in √τ early on)."""
    import numpy as np
    from scipy.integrate import cumulative_trapezoid

    root_tau = np.r_[0.0, np.geomspace(1e-5, math.sqrt(_STEADY_TAU), 3000)]
    f = series_surface(root_tau**2)
    return root_tau, f, cumulative_trapezoid(2.0 * root_tau * f, root_tau, initial=0.0)


def _response(tau):
    """(F(1, τ), ∫_0^τ F(1, τ') dτ') for any τ ≥ 0 (NumPy)."""
    import numpy as np

    root_tau, f, integral = _surface_table()
    tau = np.clip(tau, 0.0, None)
    s = np.sqrt(np.clip(tau, None, _STEADY_TAU))
    late = tau - np.clip(tau, None, _STEADY_TAU)  # past the table, exactly 3τ + 1/5
    return (
        np.interp(s, root_tau, f) + 3.0 * late,
        np.interp(s, root_tau, integral) + late * (f[-1] + 1.5 * late),
    )


def step_response_matrix(times, rate: float):
    """(T, T) matrix G such that, for a surface flux q(t) known at ``times`` (ascending, from 0;
    in units of the flux behind the amplitude A of ``chen2020.particle_rates``) and linear
    between them, the surface stoichiometry is x(t_i) = x0 + A·(G @ q)_i: Duhamel's
    superposition of the sphere's exact constant-flux response F(1, τ) (``series_surface``), τ =
    ``rate``·t, integrated exactly over each linear piece. With q ≡ 1 it is A·F(1, rate·t), the
    SPM's particle."""
    import numpy as np

    t = np.asarray(times, float)
    lag = t[:, None] - t[None, :]  # ≤ 0 where a piece has not started: no response
    f, integral = _response(rate * lag)
    # over each piece [t_j, t_j+1], F(1, rate·(t_i − s)) averaged in s; with q linear there the
    # piece gives q_j·F(t_i − t_j) − q_j+1·F(t_i − t_j+1) + (q_j+1 − q_j)·mean_f
    mean_f = np.diff(-integral / rate, axis=1) / np.diff(t)
    g = np.zeros_like(lag)
    g[:, :-1] += f[:, :-1] - mean_f
    g[:, 1:] += mean_f - f[:, 1:]
    return g
