"""PyBaMM's ``Chen2020`` single-particle model, written once over an array namespace.

The constants are PyBaMM 26's ``Chen2020`` parameter set (LG M50 cell) at 298.15 K; the open-circuit
potentials, exchange-current densities and voltage are the expressions PyBaMM's SPM builds from
it, including the two regularisations PyBaMM 26 adds: the barrier ``U_asymptotes`` on both OCPs
and the regularised square roots (``RegPower``, δ = 1e-3) in the exchange-current density.
``tests/test_battery_physics.py`` checks every function against PyBaMM to 1e-10 and every constant
against the parameter set. The same code runs in NumPy, torch and JAX (``xp`` is the namespace).

Stoichiometries are clamped smoothly into (0, 1) before the OCP and exchange-current density see
them, so a parameter set that drives a particle past full or empty (a cut-off reached earlier
than the data's) still gives a finite, smooth voltage; inside [5e-7, 1 - 5e-7] the clamp moves
nothing by more than 1e-15.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "CONSTANTS",
    "exchange_current_density",
    "ocp_negative",
    "ocp_negative_fit",
    "ocp_positive",
    "ocp_positive_fit",
    "particle_rates",
    "voltage",
]

F = 96485.33212  # C/mol (pybamm.constants.F)
R_GAS = 8.314462618  # J/(mol K) (pybamm.constants.R)
T_K = 298.15
CONSTANTS = {
    "Positive particle diffusivity [m2.s-1]": 4e-15,
    "Negative particle diffusivity [m2.s-1]": 3.3e-14,
    "Positive particle radius [m]": 5.22e-06,
    "Negative particle radius [m]": 5.86e-06,
    "Maximum concentration in positive electrode [mol.m-3]": 63104.0,
    "Maximum concentration in negative electrode [mol.m-3]": 33133.0,
    "Initial concentration in positive electrode [mol.m-3]": 17038.0,
    "Initial concentration in negative electrode [mol.m-3]": 29866.0,
    "Positive electrode active material volume fraction": 0.665,
    "Negative electrode active material volume fraction": 0.75,
    "Positive electrode thickness [m]": 7.56e-05,
    "Negative electrode thickness [m]": 8.52e-05,
    "Electrode height [m]": 0.065,
    "Electrode width [m]": 1.58,
    "Nominal cell capacity [A.h]": 5.0,
    "Initial concentration in electrolyte [mol.m-3]": 1000.0,
    "Lower voltage cut-off [V]": 2.5,
}
_C = CONSTANTS
CAPACITY_AH = _C["Nominal cell capacity [A.h]"]
CUTOFF_V = _C["Lower voltage cut-off [V]"]
_AREA_M2 = _C["Electrode height [m]"] * _C["Electrode width [m]"]
_THERMAL_V = R_GAS * T_K / F
_REG_POWER_DELTA = 1e-3
_CLAMP = 1e-7  # the smooth clamp keeps stoichiometries within [1e-7, 1 - 1e-7]
_CLAMP_SHARPNESS = 1e8


def _electrode(domain: str) -> dict[str, float]:
    d = domain.capitalize()
    return {
        "D": _C[f"{d} particle diffusivity [m2.s-1]"],
        "R": _C[f"{d} particle radius [m]"],
        "c_max": _C[f"Maximum concentration in {domain} electrode [mol.m-3]"],
        "x0": _C[f"Initial concentration in {domain} electrode [mol.m-3]"]
        / _C[f"Maximum concentration in {domain} electrode [mol.m-3]"],
        "eps": _C[f"{d} electrode active material volume fraction"],
        "L": _C[f"{d} electrode thickness [m]"],
    }


ELECTRODES = {"negative": _electrode("negative"), "positive": _electrode("positive")}


def interfacial_current_density(domain: str, current_a):
    """Interfacial current density j [A.m-2] of the SPM: I / (a·L·A), a = 3ε/R; > 0 on the
    negative side during discharge."""
    e = ELECTRODES[domain]
    j = current_a / (3.0 * e["eps"] / e["R"] * e["L"] * _AREA_M2)
    return j if domain == "negative" else -j


def particle_rates(domain: str, current_a, diffusivity_scale=1.0):
    """(1/s rate of τ = D t / R², stoichiometry amplitude A) of one particle.

    With constant current the surface flux is constant and the particle's stoichiometry is
    x(r, t) = x0 + A·F(r/R, D t/R²), where F is the universal constant-flux solution
    (F_τ = ΔF, F(r, 0) = 0, ∂F/∂r(1) = 1) and A = -j R / (F D c_max).
    """
    e = ELECTRODES[domain]
    D = e["D"] * diffusivity_scale
    j = interfacial_current_density(domain, current_a)
    return D / e["R"] ** 2, -j * e["R"] / (F * D * e["c_max"])


def smooth_clamp(xp: Any, x):
    """x kept inside [1e-7, 1 - 1e-7] by two softplus walls (1e-8 wide); the identity to 1e-15
    from 5e-7 to 1 - 5e-7."""
    k = _CLAMP_SHARPNESS
    lo, hi = _CLAMP, 1.0 - _CLAMP

    def softplus(z):  # stable log(1 + e^(k z)) / k
        return (xp.clip(k * z, 0.0, None) + xp.log1p(xp.exp(-xp.abs(k * z)))) / k

    return lo + softplus(x - lo) - softplus(x - hi)


def _u_asymptote_approaching_zero(xp: Any, sto):
    # PyBaMM 26 U_asymptote_approaching_zero, with its exact linear continuation.
    a, b, c = 205.0568621937484, 6910.192179565431, -7.7e-4
    sto_limit = c - math.log(2.0 / 2.220446049250313e-16) / b
    return a * (
        xp.log(1.0 + xp.exp(-b * (xp.clip(sto, sto_limit, None) - c)))
        - b * xp.clip(sto - sto_limit, None, 0.0)
    )


def u_asymptotes(xp: Any, sto):
    return _u_asymptote_approaching_zero(xp, sto) - _u_asymptote_approaching_zero(xp, 1.0 - sto)


def ocp_negative_fit(xp: Any, sto):
    """Graphite (LG M50) OCP [V], Chen2020's fitted curve without PyBaMM's barrier."""
    s = smooth_clamp(xp, sto)
    return (
        1.9793 * xp.exp(-39.3631 * s)
        + 0.2482
        - 0.0909 * xp.tanh(29.8538 * (s - 0.1234))
        - 0.04478 * xp.tanh(14.9159 * (s - 0.2769))
        - 0.0205 * xp.tanh(30.4444 * (s - 0.6103))
    )


def ocp_positive_fit(xp: Any, sto):
    """NMC 811 (LG M50) OCP [V], Chen2020's fitted curve without PyBaMM's barrier."""
    s = smooth_clamp(xp, sto)
    return (
        -0.8090 * s
        + 4.4875
        - 0.0428 * xp.tanh(18.5138 * (s - 0.5542))
        - 17.7326 * xp.tanh(15.7890 * (s - 0.3117))
        + 17.5842 * xp.tanh(15.9308 * (s - 0.3120))
    )


def ocp_negative(xp: Any, sto):
    """Graphite (LG M50) OCP [V] with PyBaMM's barrier; ``sto`` raw, clipped like PyBaMM inside."""
    return ocp_negative_fit(xp, sto) + u_asymptotes(xp, sto)


def ocp_positive(xp: Any, sto):
    """NMC 811 (LG M50) OCP [V] with PyBaMM's barrier."""
    return ocp_positive_fit(xp, sto) + u_asymptotes(xp, sto)


def _reg_sqrt(xp: Any, x_over_scale, scale: float):
    # PyBaMM's RegPower(x, 1/2, scale) for the state-dependent roots: (x/s)·((x/s)² + δ²)^(-1/4)·s^(1/2).
    y = x_over_scale
    return y * (y * y + _REG_POWER_DELTA**2) ** -0.25 * math.sqrt(scale)


_J0_REF = {"negative": 6.48e-7, "positive": 3.42e-6}  # (A/m2)(m3/mol)^1.5, Chen2020


def exchange_current_density(xp: Any, domain: str, sto, scale=1.0, c_e=None):
    """Exchange-current density [A.m-2] at surface stoichiometry ``sto`` (Arrhenius factor 1 at
    298.15 K), times ``scale``; at the electrolyte concentration ``c_e`` [mol.m-3] (None: the
    initial one, as in the SPM)."""
    c_max = ELECTRODES[domain]["c_max"]
    s = smooth_clamp(xp, sto)
    # constant in the SPM, so PyBaMM leaves this root unregularised there
    root_c_e = (
        math.sqrt(_C["Initial concentration in electrolyte [mol.m-3]"]) if c_e is None else xp.sqrt(c_e)
    )
    return scale * _J0_REF[domain] * root_c_e * _reg_sqrt(xp, s, c_max) * _reg_sqrt(xp, 1.0 - s, c_max)


def overpotential(xp: Any, domain: str, current_a, sto, scale=1.0, c_e=None):
    """Butler–Volmer reaction overpotential [V]: (2RT/F)·arcsinh(j / (2 j0)), j0 at ``c_e``."""
    j = interfacial_current_density(domain, current_a)
    return 2.0 * _THERMAL_V * xp.arcsinh(j / (2.0 * exchange_current_density(xp, domain, sto, scale, c_e)))


def voltage(xp: Any, x_n_surf, x_p_surf, current_a, negative_j0_scale=1.0):
    """SPM terminal voltage [V]: U_p − U_n + η_p − η_n (no electrolyte or contact losses in SPM)."""
    return (
        ocp_positive(xp, x_p_surf)
        - ocp_negative(xp, x_n_surf)
        + overpotential(xp, "positive", current_a, x_p_surf)
        - overpotential(xp, "negative", current_a, x_n_surf, negative_j0_scale)
    )
