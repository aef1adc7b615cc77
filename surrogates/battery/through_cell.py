"""The DFN's charge conservation and Butler–Volmer across each electrode, at five nodes.

Across an electrode the DFN's reaction is not uniform: the interfacial current density j(x)
sets the electrolyte current i_e (∂i_e/∂x = a·j; ∫ a·j dx = I), the solid carries the rest
(i_s = I − i_e), and the potential difference Ψ = φ_s − φ_e follows both Ohm's laws,

    ∂Ψ/∂x = −i_s/σ + i_e/κ_eff(c_e) − χ·(RT/F)·∂ln c_e/∂x,      χ = 2(1 − t⁺),

while at every x Butler–Volmer ties it to the local surface and reaction:
Ψ = U(x_s) + (2RT/F)·arcsinh(j / (2 j0(x_s, c_e))). Here both hold at the electrolyte's five
Gauss–Legendre nodes per electrode (``electrolyte.quadrature``), with j = j_avg·(1 + δ(s)) and
δ a sum of the Legendre polynomials P1–P4 in s, the distance from the electrode's current
collector (so ∫ a·j = I exactly). Integrating Ohm's laws from the collector to each node, every
node gives the same

    B = U(x_s,k) + η_k ∓ A_k + χ·(RT/F)·ln c_e,k        (− in the negative, + in the positive),

A_k = ∫_0^{s_k} (−i_s/σ + i_e/κ_eff) ds; the spread of B over the nodes is the residual
(``cell_voltage``), and the terminal voltage is B_p − B_n − ∫ i_e/κ_eff dx over the cell (the
concentration terms telescope). With δ = 0, one surface and c_e uniform it is the SPMe's
voltage; with PyBaMM's own DFN fields at the nodes (surfaces, c_e, j fitted by P1–P4) the
residual is at most 1.0 mV and the voltage within 1.7 mV of PyBaMM's at four corners of the box,
where a uniform reaction leaves 11–41 mV of residual (``tests/surrogates/test_battery_through_cell.py``).

κ_eff = κ(c_e)·ε^1.5 at each node's c_e (the separator's at the SPMe's composite
concentration: 1 mV of drop at 1C); σ is the solid's conductivity (Bruggeman 0 in Chen2020).

Not yet part of ``battery.p2d``: the residual is what a DFN-resolved version of its correcting
network would hold in its loss (issue 4, item 2). Tried on the 1,024 training discharges (Adam,
3,000–6,000 steps, 2 cores) with the network giving the nodes' surfaces and the reaction's
coefficients: voltage alone left the surfaces free and the fit found surfaces no reaction
balances (8 mV voltage error, 81 mV residual); with the residual in the loss (1 mV units) the
voltage error stayed at 27 mV, and adding the DFN's surfaces at the nodes as data did not help
(12–28 mV, residual 4–15 mV). Given the DFN's surfaces, solving the residual for the reaction
(Newton, 4 unknowns per electrode, 4 steps to 1e-13 V) gives the DFN's voltage within 2 mV and
its reaction within 0.04. The nodes' surfaces alone the network learns well (0.001 RMSE in
3,000 steps). Solving the reaction by four Newton steps inside the training, from scratch or
from those surfaces, in float32 or float64, did not fit (32–100 mV): four steps from a uniform
reaction leave over 1 % of the samples unbalanced (residual p99 0.5–1.3 V), and their gradients
pull the surfaces off. Solved to convergence (30 damped Newton steps) on the surfaces-only fit,
with no voltage term and no voltage data at all, the reaction gives the DFN's voltage within
1.9 mV (median over every 20th training sample) and 5.1 mV RMS where it converges; it does not
on 2.8 % of the samples, all in the positive electrode late in slow (scale 0.1–0.6), fast
(0.85–1.9C) discharges, where the fitted surfaces overshoot full (up to 1.006) and a node can
take no reaction. The shipped surrogate (2.2 mV median) keeps its Gaussian spread; surfaces kept
inside (0, 1), a converged solve with implicit gradients and a voltage term fitted on top are
the next steps, and the solve's cost in a likelihood is still to be measured.
"""

from __future__ import annotations

import functools

import numpy as np

from surrogates.battery import chen2020, electrolyte

__all__ = ["N_REACTION_MODES", "cell_voltage", "legendre_at_nodes"]

N_REACTION_MODES = 4  # δ = Σ c_m P_m(s), m = 1..4: as many as the five nodes' conditions
CHI_VT = 2.0 * (1.0 - electrolyte.TRANSFERENCE) * chen2020._THERMAL_V
DOMAINS = ("negative", "positive")
_SEPARATOR_KAPPA = (
    float(electrolyte.conductivity(np, electrolyte.C_E_OHMIC))
    * electrolyte.POROSITY[1] ** electrolyte.BRUGGEMAN
)


def _nodes(domain: str) -> np.ndarray:
    """The nodes as ξ ∈ (−1, 1) of s (−1 at the collector): the electrolyte's ascend in x."""
    xi, _ = np.polynomial.legendre.leggauss(electrolyte.QUADRATURE_NODES)
    return xi if domain == "negative" else -xi


@functools.cache
def legendre_at_nodes(domain: str, degree: int) -> np.ndarray:
    """P_1 … P_degree of s at ``domain``'s nodes, shape (M, degree); each has mean 0 there."""
    return np.polynomial.legendre.legvander(_nodes(domain), degree)[:, 1:]


@functools.cache
def _electrode(domain: str) -> dict:
    """The node-wise linear maps of one electrode, in SI units per ampere per square metre."""
    xi = _nodes(domain)
    thickness = electrolyte.THICKNESS_M[0 if domain == "negative" else 2]
    half = thickness / 2.0
    leg = np.polynomial.legendre

    def at_nodes(coefficients):
        return leg.legval(xi, coefficients)

    # i_e(s)/I = ∫_0^s (1 + δ)/L and ∫_0^s i_e/I, for 1 and each P_m
    once = [leg.legint(np.eye(N_REACTION_MODES + 1)[m], lbnd=-1) for m in range(N_REACTION_MODES + 1)]
    twice = [leg.legint(c, lbnd=-1) for c in once]
    current = np.stack([at_nodes(c) for c in once], -1) / 2.0
    charge = np.stack([at_nodes(c) for c in twice], -1) * thickness / 4.0
    # ∫_0^{s_k} f ds from f at the nodes (the degree-4 interpolant), for i_e/κ_eff
    lagrange = [leg.legfit(xi, np.eye(len(xi))[m], len(xi) - 1) for m in range(len(xi))]
    cumulative = np.stack([at_nodes(leg.legint(c, lbnd=-1)) for c in lagrange], -1) * half
    _, w = np.polynomial.legendre.leggauss(len(xi))
    conductivity = electrolyte.CONSTANTS[f"{domain.capitalize()} electrode conductivity [S.m-1]"]
    return {
        "s": thickness * (xi + 1.0) / 2.0,
        "current": current,  # (M, 5): i_e/I at the nodes for (1, P1..P4)
        "charge": charge,  # (M, 5): ∫_0^{s_k} i_e ds / I [m]
        "cumulative": cumulative,  # (M, M)
        "weights": w / 2.0,  # the electrode's average
        "lengths": w * half,  # ∫ over the electrode
        "sigma": conductivity,
        "porosity_b": electrolyte.POROSITY[0 if domain == "negative" else 2] ** electrolyte.BRUGGEMAN,
    }


def cell_voltage(xp, surfaces: dict, reaction: dict, current_a, negative_j0_scale, c_e_n, c_e_p):
    """(terminal voltage [V], residual [V] (..., 2M)) from each electrode's surface
    stoichiometries at its nodes ``surfaces[domain]`` (..., M), its reaction's Legendre
    coefficients ``reaction[domain]`` (..., 4), the current [A] and c_e at the nodes."""

    def arr(a):
        return xp.asarray(a, dtype=c_e_n.dtype)

    current_density = current_a / chen2020._AREA_M2 + 0.0 * c_e_n[..., 0]
    scales = {"negative": negative_j0_scale + 0.0 * current_density, "positive": 1.0 + 0.0 * current_density}
    # the fitted OCPs: PyBaMM's barrier at empty and full (thousands of volts a hair past them)
    # is the caller's, at each electrode's mean surface, as in the SPM
    ocps = {"negative": chen2020.ocp_negative_fit, "positive": chen2020.ocp_positive_fit}
    b, residuals, drop = {}, [], current_density * electrolyte.THICKNESS_M[1] / _SEPARATOR_KAPPA
    for domain, c_e in zip(DOMAINS, (c_e_n, c_e_p), strict=True):
        e = _electrode(domain)
        ones = 1.0 + 0.0 * reaction[domain][..., :1]
        c = xp.concatenate([ones, reaction[domain]], -1)  # (…, 5): 1 and δ's coefficients
        share = c @ arr(e["current"].T)  # i_e/I at the nodes
        j_share = 1.0 + reaction[domain] @ arr(legendre_at_nodes(domain, N_REACTION_MODES).T)
        eta = chen2020.overpotential(
            xp,
            domain,
            current_a_at(current_density, j_share),
            surfaces[domain],
            scales[domain][..., None],
            c_e,
        )
        psi = ocps[domain](xp, surfaces[domain]) + eta
        ie_over_kappa = share / (electrolyte.conductivity(xp, c_e) * e["porosity_b"])
        solid = (c @ arr(e["charge"].T) - arr(e["s"])) / e["sigma"]
        ohmic = current_density[..., None] * (solid + ie_over_kappa @ arr(e["cumulative"].T))
        b_k = psi + (-ohmic if domain == "negative" else ohmic) + CHI_VT * xp.log(c_e)
        b[domain] = b_k @ arr(e["weights"])
        residuals.append(b_k - b[domain][..., None])
        drop = drop + current_density * (ie_over_kappa @ arr(e["lengths"]))
    return b["positive"] - b["negative"] - drop, xp.concatenate(residuals, -1)


def current_a_at(current_density, j_share):
    """The cell current [A] that would give the local reaction j_avg·j_share everywhere (what
    ``chen2020.overpotential`` takes)."""
    return (current_density * chen2020._AREA_M2)[..., None] * j_share
