"""Single-machine infinite-bus (SMIB) swing equation: the system, its dimensionless form, its PINN.

    m·δ'' + d·δ' + B·sin(δ) = P,      δ(0) = delta0,  δ'(0) = omega0

Dividing by ``B`` and rescaling time by ``sqrt(m/B)`` (s = t·sqrt(B/m)) gives

    δ_ss + ζ·δ_s + sin(δ) = p,        ζ = d/sqrt(m·B),  p = P/B,  δ_s(0) = omega0·sqrt(m/B)

so the trajectory depends on four numbers, not six: the network learns δ(s; ζ, p, delta0, w0)
and w = δ_s, and any ``B`` is reached exactly (a study at ``B`` is the trained problem at
``B_TRAIN`` with ``m, d, P`` multiplied by ``B_TRAIN/B``). The rescaled time also makes the
oscillation period nearly the same for every inertia, which is what makes the network small.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "B_TRAIN",
    "CONDITIONS",
    "OBSERVABLES",
    "PARAMETERS",
    "TRAINED_BOX",
    "T_MAX_S",
    "UNITS",
    "dimensionless",
    "domain_for",
    "encode",
    "hard_ic",
    "rhs",
    "saddle_margin",
    "slips",
    "to_observables",
]

PARAMETERS = ("m", "d")
CONDITIONS = ("B", "P", "delta0", "omega0")
OBSERVABLES = ("Angle [rad]", "Frequency deviation [rad.s-1]")
UNITS = {
    "m": "p.u.·s²/rad",
    "d": "p.u.·s/rad",
    "B": "p.u.",
    "P": "p.u.",
    "delta0": "rad",
    "omega0": "rad.s-1",
    "t": "s",
}
B_TRAIN = 0.2
T_MAX_S = 20.0
# The box the network was trained on, at B = B_TRAIN. No trajectory in it slips a pole.
TRAINED_BOX = {
    "t": (0.0, T_MAX_S),
    "m": (0.1, 1.0),
    "d": (0.05, 0.5),
    "P": (0.05, 0.15),
    "delta0": (-0.2, 0.3),
    "omega0": (-0.3, 0.3),
}

# Ranges of the dimensionless inputs over the trained box, used to normalise them to [-1, 1].
_S_MAX = T_MAX_S * math.sqrt(B_TRAIN / TRAINED_BOX["m"][0])
_LOG_ZETA = (
    math.log(TRAINED_BOX["d"][0] / math.sqrt(TRAINED_BOX["m"][1] * B_TRAIN)),
    math.log(TRAINED_BOX["d"][1] / math.sqrt(TRAINED_BOX["m"][0] * B_TRAIN)),
)
_P = (TRAINED_BOX["P"][0] / B_TRAIN, TRAINED_BOX["P"][1] / B_TRAIN)
_W0_MAX = TRAINED_BOX["omega0"][1] * math.sqrt(TRAINED_BOX["m"][1] / B_TRAIN)


def _unit(x, lo, hi):
    return (x - lo) * (2.0 / (hi - lo)) - 1.0


def dimensionless(xp: Any, t, m, d, P, B, delta0, omega0):
    """(s, ζ, p, delta0, w0, ω-scale [rad.s-1 per unit of w]) from physical inputs."""
    rate = xp.sqrt(B / m)  # 1/s: dimensionless time per second
    return t * rate, d / xp.sqrt(m * B), P / B, delta0, omega0 / rate, rate


def encode(xp: Any, s, zeta, p, delta0, w0):
    """Network input in [-1, 1]^5 (log ζ, because ζ spans a factor of 30)."""
    cols = [
        _unit(s, 0.0, _S_MAX),
        _unit(xp.log(zeta), *_LOG_ZETA),
        _unit(p, *_P),
        _unit(delta0, *TRAINED_BOX["delta0"]),
        w0 / _W0_MAX,
    ]
    base = 0.0 * (s + zeta + p + delta0 + w0)  # broadcast shape, the same in torch and JAX
    return xp.stack([c + base for c in cols], -1)


def hard_ic(xp: Any, s, delta0, w0, out):
    """Initial conditions held exactly by construction.

    δ = delta0 + w0·(1−e^−s) + (1−e^−s)²·N₁ and w = w0 + (1−e^−s)·N₂: the saturating factor keeps
    the correction bounded at large s (``δ0 + ω0·t + t²·N`` grows without bound and was three
    times less accurate in the trial the foundation issue reports).
    """
    g = 1.0 - xp.exp(-s)
    delta = delta0 + w0 * g + g * g * out[..., 0]
    w = w0 + g * out[..., 1]
    return delta, w


def to_observables(delta, w, rate):
    """Angle [rad] and frequency deviation [rad.s-1] = w·sqrt(B/m)."""
    return {OBSERVABLES[0]: delta, OBSERVABLES[1]: w * rate}


def rhs(t, y, m, d, P, B):
    """Right-hand side of the first-order swing equation in physical units, y = (δ, ω)."""
    delta, omega = y
    return [omega, (P - d * omega - B * math.sin(delta)) / m]


def slips(angle, P, B) -> bool:
    """True when a trajectory passes the unstable equilibrium π − arcsin(P/B) and slips a pole.

    About 0.03 % of the trained box does (high m, d near 0.05, P near 0.15, large omega0): the
    angle then grows without bound, which no smooth surrogate follows; such trajectories are left
    out of training and validation, and their count is reported.
    """
    barrier = math.pi - math.asin(P / B)
    return bool((angle > barrier).any() or (angle < -math.pi - math.asin(P / B)).any())


def saddle_margin(angle, P, B):
    """How close a trajectory comes to slipping: rad between its angle and the nearer unstable
    equilibrium (π − arcsin(P/B) above, −π − arcsin(P/B) below), over the last axis of ``angle``.

    Near zero the trajectory creeps past the saddle, where it depends sharply on every input; the
    surrogate's error there is measured separately (``smib_pinn.error_by_saddle_margin``).
    """
    import numpy as np

    angle = np.asarray(angle)
    shift = np.arcsin(np.asarray(P) / B)
    above = np.pi - shift - angle.max(axis=-1)
    below = angle.min(axis=-1) + np.pi + shift
    return np.minimum(above, below)


def domain_for(B: float) -> dict[str, tuple[float, float]]:
    """The trained box expressed at a study's ``B``: m, d and P scale with B/B_TRAIN."""
    k = B / B_TRAIN
    box = dict(TRAINED_BOX)
    for name in ("m", "d", "P"):
        lo, hi = TRAINED_BOX[name]
        box[name] = (lo * k, hi * k)
    return box
