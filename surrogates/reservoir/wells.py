"""Well-test physics in oilfield units: dimensionless groups, the line source, superposition.

A well producing at constant rate q from an infinite, homogeneous reservoir of thickness h obeys
the radial diffusivity equation. In the dimensionless variables

    t_D = 0.0002637·k·t / (φ·μ·c_t·r_w²)      (t in h, k in mD, μ in cP, c_t in 1/psi, r_w in ft)
    p_D = k·h·Δp / (141.2·q·B·μ)              (Δp in psi, q in STB/D)
    r_D = r / r_w

the line-source solution is p_D(r_D, t_D) = ½·E1(r_D²/(4·t_D)): one function of the Boltzmann
variable z = r_D²/(4·t_D). The well's pressure drop adds the steady skin s; a sealing fault at
distance L adds an image well at 2L (r_D = 2L/r_w), exact for this linear equation; a buildup after
producing for t_p adds, by superposition in time, a well injecting at q from t_p on, which cancels
the skin.

Any ``ez`` below is the function z ↦ ½·E1(z) (the reference: SciPy's or JAX's ``exp1``; the
surrogate: the trained network), so the reference and the surrogate share every other line.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CONDITIONS",
    "DOMAIN",
    "OBSERVABLE",
    "PARAMETERS",
    "UNITS",
    "pressure_drop_psi",
    "pressure_psi",
    "pressure_unit_psi",
    "t_dimensionless",
]

PARAMETERS = ("permeability", "fault_distance", "skin")
CONDITIONS = (
    "rate",
    "fvf",
    "viscosity",
    "porosity",
    "total_compressibility",
    "wellbore_radius",
    "thickness",
    "initial_pressure",
    "production_time",
)
OBSERVABLE = "Pressure [psi]"
UNITS = {
    "permeability": "mD",
    "fault_distance": "ft",
    "skin": "",
    "rate": "STB/D",
    "fvf": "RB/STB",
    "viscosity": "cP",
    "porosity": "",
    "total_compressibility": "1/psi",
    "wellbore_radius": "ft",
    "thickness": "ft",
    "initial_pressure": "psi",
    "production_time": "h",
    "t": "s",
}
# The box the surrogate is trained and validated on: the ranges for k, L, s and time, and
# typical field ranges for the rest (t in s: 0.01 h to 500 h; a buildup's shut-in time Δt lies in
# the same range and production_time = 0 means a drawdown).
DOMAIN = {
    "t": (36.0, 1.8e6),
    "permeability": (1.0, 1000.0),
    "fault_distance": (50.0, 5000.0),
    "skin": (-3.0, 20.0),
    "rate": (10.0, 10_000.0),
    "fvf": (1.0, 2.0),
    "viscosity": (0.2, 20.0),
    "porosity": (0.05, 0.35),
    "total_compressibility": (3e-6, 3e-4),
    "wellbore_radius": (0.25, 0.5),
    "thickness": (5.0, 300.0),
    "initial_pressure": (500.0, 15_000.0),
    "production_time": (0.0, 500.0),
}
_T_D_PER_H = 0.0002637  # t_D per (k·t/(φ·μ·c_t·r_w²)), t in hours
_P_D_PSI = 141.2  # psi per p_D per (q·B·μ/(k·h))


def t_dimensionless(t_h, permeability, porosity, viscosity, total_compressibility, wellbore_radius):
    return (
        _T_D_PER_H * permeability * t_h / (porosity * viscosity * total_compressibility * wellbore_radius**2)
    )


def pressure_unit_psi(rate, fvf, viscosity, permeability, thickness):
    """psi per unit of p_D: 141.2·q·B·μ/(k·h)."""
    return _P_D_PSI * rate * fvf * viscosity / (permeability * thickness)


def _drawdown_pd(xp: Any, ez, t_d, r_fault_d, skin):
    """p_D at the well after producing for t_D: line source + skin + image well at 2L."""
    return ez(1.0 / (4.0 * t_d)) + skin + ez(r_fault_d**2 / (4.0 * t_d))


def pressure_drop_psi(xp: Any, ez, t_s, **v):
    """p_i − p_w [psi] at times ``t_s`` [s]: of the drawdown, or since shut-in for a buildup
    (``production_time`` > 0 h; then ``t_s`` is the shut-in time Δt)."""
    t_h = t_s / 3600.0
    rock = (
        v["permeability"],
        v["porosity"],
        v["viscosity"],
        v["total_compressibility"],
        v["wellbore_radius"],
    )
    r_fault_d = 2.0 * v["fault_distance"] / v["wellbore_radius"]
    unit = pressure_unit_psi(v["rate"], v["fvf"], v["viscosity"], v["permeability"], v["thickness"])
    t_p = v.get("production_time", 0.0)
    pd = _drawdown_pd(xp, ez, t_dimensionless(t_h + t_p, *rock), r_fault_d, v["skin"])
    # Buildup: an injecting well from t_p on; its skin cancels the producer's. xp.where keeps
    # production_time traceable (0 → drawdown, the second term vanishes).
    shut_in = _drawdown_pd(xp, ez, t_dimensionless(t_h, *rock), r_fault_d, v["skin"])
    return unit * xp.where(xp.asarray(t_p) > 0, pd - shut_in, pd)


def pressure_psi(xp: Any, ez, t_s, **v):
    """Observable: the well's pressure [psi]."""
    return v["initial_pressure"] - pressure_drop_psi(xp, ez, t_s, **v)
