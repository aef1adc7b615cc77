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

``solve_reaction`` finds the reaction that balances given surfaces (Newton on the four
coefficients per electrode; only Butler–Volmer is nonlinear in them): at PyBaMM's surfaces and
c_e it returns the DFN's own reaction to 0.04 and its voltage to 2 mV.

``electrolyte_residual`` checks the electrolyte's diffusion at the same nodes, in weak form
(no gradient of c_e, which five nodes do not resolve): PyBaMM's fields leave at most 0.024 of
the mean source, a uniform reaction up to 0.33.

``battery.p2d`` is built on it: its network gives the nodes' surfaces and ``solve_reaction``
the reaction (``p2d_pinn``'s docstring records what else was tried). The solve's cost in a JAX
likelihood on a 356-time record, both electrodes with their gradient, fell from 7.2 ms (8 steps,
LAPACK's batched 4×4 solves, the gradient through every step) to about 0.9 ms (6 steps, the
unrolled elimination below, the gradient through the last step only).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from surrogates.battery import chen2020, electrolyte

__all__ = [
    "N_REACTION_MODES",
    "cell_voltage",
    "electrolyte_residual",
    "legendre_at_nodes",
    "solve_reaction",
]

N_REACTION_MODES = 4  # δ = Σ c_m P_m(s), m = 1..4: as many as the five nodes' conditions
MAX_STEP = 0.75  # the longest damped Newton step, in the reaction's Legendre coefficients (``_newton_step``)
CHI_VT = (
    2.0
    * (1.0 - electrolyte.TRANSFERENCE)
    * electrolyte.CONSTANTS["Thermodynamic factor"]
    * chen2020._THERMAL_V
)
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
    thickness = _thickness_m(domain)
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
    terms = electrode_terms(xp, surfaces, current_a, negative_j0_scale, c_e_n, c_e_p)
    return _voltage(xp, terms, reaction, current_a)


def solve_cell(xp, surfaces: dict, current_a, negative_j0_scale, c_e_n, c_e_p, steps: int = 8):
    """(the reaction ``solve_reaction`` finds in each electrode, ``cell_voltage`` there), with
    the node terms (OCP, exchange current, conductivities) computed once for both."""
    terms = electrode_terms(xp, surfaces, current_a, negative_j0_scale, c_e_n, c_e_p)
    reaction = {k: _solve(xp, v, steps) for k, v in terms.items()}
    return reaction, _voltage(xp, terms, reaction, current_a)


def electrode_terms(xp, surfaces: dict, current_a, negative_j0_scale, c_e_n, c_e_p) -> dict:
    """{domain: its ``_NodeTerms``} at the nodes' surfaces and c_e."""
    current_density = current_a / chen2020._AREA_M2 + 0.0 * c_e_n[..., 0]
    scales = {"negative": negative_j0_scale, "positive": 1.0}
    return {
        domain: _node_terms(xp, domain, surfaces[domain], c_e, current_density, scales[domain])
        for domain, c_e in zip(DOMAINS, (c_e_n, c_e_p), strict=True)
    }


def _voltage(xp, terms: dict, reaction: dict, current_a):
    """``cell_voltage`` from the electrodes' node terms."""
    current_density = current_a / chen2020._AREA_M2 + 0.0 * terms["negative"].fixed[..., 0]
    b, residuals, drop = {}, [], current_density * electrolyte.THICKNESS_M[1] / _SEPARATOR_KAPPA
    for domain in DOMAINS:
        b_k = terms[domain].balance(reaction[domain])
        b[domain] = b_k @ terms[domain].weights
        residuals.append(b_k - b[domain][..., None])
        drop = drop + current_density * terms[domain].electrolyte_drop_per_current(reaction[domain])
    return b["positive"] - b["negative"] - drop, xp.concatenate(residuals, -1)


@dataclass
class _NodeTerms:
    """One electrode's node balance B_k(δ) = fixed_k + 2RT/F·arcsinh(a_k·q_k) + (linear·δ)_k,
    q = 1 + P·δ the local reaction over its average: only Butler–Volmer is nonlinear in δ."""

    xp: Any
    fixed: Any  # (..., M): U + the uniform reaction's ohmic terms + χ·RT/F·ln c_e
    a: Any  # (..., M): j_avg / (2 j0)
    linear: Any  # (..., M, 4): the ohmic terms' change per coefficient
    legendre: Any  # (M, 4)
    weights: Any  # (M,)
    drop_const: Any  # (...,): ∫ i_e/κ_eff / I over the electrode, uniform reaction
    drop_linear: Any  # (..., 4)

    def balance(self, delta):
        q = 1.0 + delta @ self.legendre.T
        return (
            self.fixed
            + 2.0 * chen2020._THERMAL_V * self.xp.arcsinh(self.a * q)
            + (self.linear @ delta[..., None])[..., 0]
        )

    def slope(self, delta):
        q = 1.0 + delta @ self.legendre.T
        kinetic = 2.0 * chen2020._THERMAL_V * self.a / self.xp.sqrt(1.0 + (self.a * q) ** 2)
        return kinetic[..., None] * self.legendre + self.linear

    def electrolyte_drop_per_current(self, delta):
        return self.drop_const + (self.drop_linear * delta).sum(-1)


def _node_terms(xp, domain, surfaces, c_e, current_density, j0_scale) -> _NodeTerms:
    """``_NodeTerms`` of ``domain`` at its nodes' surfaces and c_e, the current density [A.m-2]."""

    def arr(a):
        return xp.asarray(a, dtype=c_e.dtype)

    e = _electrode(domain)
    current_a = current_density * chen2020._AREA_M2
    scale = (j0_scale + 0.0 * current_density)[..., None]
    j0 = chen2020.exchange_current_density(xp, domain, surfaces, scale, c_e)
    a = chen2020.interfacial_current_density(domain, current_a)[..., None] / (2.0 * j0)
    over_kappa = 1.0 / (electrolyte.conductivity(xp, c_e) * e["porosity_b"])  # (..., M)
    cumulative, current, charge = arr(e["cumulative"]), arr(e["current"]), arr(e["charge"])
    # the ohmic terms A_k / I = (∫_0^{s_k} i_e ds / I − s_k) / σ + ∫_0^{s_k} (i_e/I)/κ_eff ds, affine in δ
    ohmic_const = (charge[:, 0] - arr(e["s"])) / e["sigma"] + (current[:, 0] * over_kappa) @ cumulative.T
    ohmic_linear = charge[:, 1:] / e["sigma"] + cumulative @ (current[:, 1:] * over_kappa[..., None])
    sign = -1.0 if domain == "negative" else 1.0  # B = U + η ∓ A + χ·RT/F·ln c_e
    # the fitted OCP: PyBaMM's barrier at empty and full (thousands of volts a hair past them)
    # is the caller's, at each electrode's mean surface, as in the SPM
    ocp = chen2020.ocp_negative_fit if domain == "negative" else chen2020.ocp_positive_fit
    lengths = arr(e["lengths"])
    return _NodeTerms(
        xp=xp,
        fixed=ocp(xp, surfaces) + sign * current_density[..., None] * ohmic_const + CHI_VT * xp.log(c_e),
        a=a,
        linear=sign * current_density[..., None, None] * ohmic_linear,
        legendre=arr(legendre_at_nodes(domain, N_REACTION_MODES)),
        weights=arr(e["weights"]),
        drop_const=(current[:, 0] * over_kappa) @ lengths,
        drop_linear=((current[:, 1:] * over_kappa[..., None]) * lengths[..., None]).sum(-2),
    )


def solve_reaction(xp, domain: str, surfaces, c_e, current_a, j0_scale=1.0, steps: int = 8):
    """The reaction's Legendre coefficients (..., 4) that balance ``domain``'s nodes (its part
    of ``cell_voltage``'s residual zero) at the given surfaces and c_e: Newton from a uniform
    reaction on the four unknowns and four conditions (each node's B equal to the last's),
    damped (``_newton_step``) but for the last step. At PyBaMM's DFN fields it lands on the
    DFN's own reaction to 0.04 in 4 steps, residual under 1e-12 V.

    Newton runs on the inputs' values; only its last step carries their derivatives (torch,
    JAX). At a converged solve that step's derivative is the implicit function theorem's,
    −(∂r/∂δ)⁺·∂r/∂inputs, so a gradient costs one step's, not every step's."""
    current_density = current_a / chen2020._AREA_M2 + 0.0 * c_e[..., 0]
    return _solve(xp, _node_terms(xp, domain, surfaces, c_e, current_density, j0_scale), steps)


def _solve(xp, terms: _NodeTerms, steps: int):
    """``solve_reaction`` on one electrode's node terms."""
    frozen = dataclasses.replace(
        terms, **{f.name: _stop_gradient(xp, getattr(terms, f.name)) for f in dataclasses.fields(terms)[1:]}
    )
    delta = 0.0 * frozen.fixed[..., :N_REACTION_MODES]
    if getattr(xp, "__name__", "") == "jax.numpy":  # one step in the graph, not steps − 1
        import jax

        delta = jax.lax.fori_loop(0, steps - 1, lambda _, d: _newton_step(xp, frozen, d, damped=True), delta)
    else:
        for _ in range(steps - 1):
            delta = _newton_step(xp, frozen, delta, damped=True)
    return _newton_step(xp, terms, delta)


def _newton_step(xp, terms: _NodeTerms, delta, damped: bool = False):
    """One Newton step on the four conditions b_k = b_M, k < M (every node's B the same);
    ``damped``: shortened to at most MAX_STEP in norm. At 1.9–2C with a small exchange current,
    full steps from a uniform start diverged mid-discharge (reaction coefficients of 1e3, the
    voltage 1.7 V off; 0.2 % of a grid's points at 1.9C, 1.7 % at 2C, however many steps).
    Damped, 5 steps and a full one converge to 3e-15 V everywhere before the cut-off (33 × 17
    scales at 0.5–2C, measured; at most 1.0 a step, 7 steps still missed by 40 mV at 1.9C, and
    at most 0.5, 6 steps by 0.1 mV at 0.5C). A line search did as well at half as much again
    per likelihood gradient, and 8 steps cost NUTS 15 %."""
    b_k = terms.balance(delta)
    slope = terms.slope(delta)  # ∂b_k/∂δ_m, (..., M, 4)
    residual = b_k[..., :-1] - b_k[..., -1:]
    step = _gauss_solve(xp, slope[..., :-1, :] - slope[..., -1:, :], residual)
    if damped:
        step = step * (MAX_STEP / xp.clip(xp.sqrt((step**2).sum(-1)), MAX_STEP, None))[..., None]
    return delta - step


def _gauss_solve(xp, a, b):
    """x with a·x = b for small ``a`` (..., n, n), by Gaussian elimination unrolled into
    elementwise operations. Batched LAPACK calls on 4×4 systems took most of a Newton step. No
    pivoting: on every 7th training sample of ``battery.p2d`` the solve still converges to
    4.6 µV at worst (its card's ``training.fit``)."""
    n = b.shape[-1]
    rows = [[a[..., i, j] for j in range(n)] + [b[..., i]] for i in range(n)]
    for k in range(n):
        for i in range(k + 1, n):
            factor = rows[i][k] / rows[k][k]
            rows[i] = [rows[i][j] - factor * rows[k][j] if j > k else 0.0 for j in range(n + 1)]
    x = [None] * n
    for i in reversed(range(n)):
        x[i] = (rows[i][n] - sum(rows[i][j] * x[j] for j in range(i + 1, n))) / rows[i][i]
    shape = 0.0 * sum(x)  # the entries broadcast to one shape (inputs may carry different ones)
    return xp.stack([v + shape for v in x], -1)


@functools.cache
def _weak_form(domain: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``electrolyte_residual``'s test functions at ``domain``'s nodes: (w_m (M, 3), ∂²w_m/∂x²
    (M, 3) [m-2], the nodes' quadrature lengths (M,) [m]), σ the fraction of the way from the
    collector: w_0 = 1 − 3σ² + 2σ³, w_1 = σ²(1 − σ)², w_2 = σ³(1 − σ)², each flat at the collector
    and flat and zero at the separator."""
    sigma = (_nodes(domain) + 1.0) / 2.0
    w = np.stack(
        [1 - 3 * sigma**2 + 2 * sigma**3, (sigma * (1 - sigma)) ** 2, sigma * (sigma * (1 - sigma)) ** 2], -1
    )
    w_ss = np.stack(
        [12 * sigma - 6, 2 - 12 * sigma + 12 * sigma**2, 6 * sigma - 24 * sigma**2 + 20 * sigma**3], -1
    )
    return w, w_ss / _thickness_m(domain) ** 2, _electrode(domain)["lengths"]


def _thickness_m(domain: str) -> float:
    return float(electrolyte.THICKNESS_M[0 if domain == "negative" else 2])


def electrolyte_residual(xp, domain: str, c_e, dc_e_dt, reaction, current_a):
    """The DFN's electrolyte diffusion, ε ∂c_e/∂t = ∂/∂x (ε^b D_e ∂c_e/∂x) + (1 − t⁺)·a·j/F, in
    weak form over ``domain``: for test functions w_m flat at the collector (no flux there) and
    flat and zero at the separator, twice by parts

        ∫ ε ∂c_e/∂t w_m dx − ∫ ε^b Φ(c_e) ∂²w_m/∂x² dx − (1 − t⁺)/F ∫ a·j w_m dx = 0,

    Φ = ∫ D_e dc_e, with no derivative of c_e in x: the nodes' Gauss–Legendre quadrature
    evaluates it from c_e (..., M), ∂c_e/∂t (..., M) [mol.m-3.s-1] and the reaction's Legendre
    coefficients (..., 4) at the nodes. Returns (..., 3), each over its mean source's
    (1 − t⁺)/F·(I/A)/L·∫w_m dx. At PyBaMM's DFN fields it is 0.024 at worst (the five nodes'
    quadrature), where the reaction spread uniformly, as the SPMe spreads it, leaves up to 0.33."""
    w, w_xx, lengths = (xp.asarray(a, dtype=c_e.dtype) for a in _weak_form(domain))
    i = 0 if domain == "negative" else 2
    eps, eps_b = electrolyte.POROSITY[i], electrolyte.POROSITY[i] ** electrolyte.BRUGGEMAN
    current_density = current_a / chen2020._AREA_M2 + 0.0 * c_e[..., 0]
    mean_source = (1.0 - electrolyte.TRANSFERENCE) / chen2020.F * current_density / _thickness_m(domain)
    q = 1.0 + reaction @ xp.asarray(legendre_at_nodes(domain, N_REACTION_MODES).T, dtype=c_e.dtype)
    sign = 1.0 if domain == "negative" else -1.0  # a·j > 0 in the negative electrode on discharge
    phi = electrolyte.diffusivity_integral(c_e)
    phi = phi - phi[..., :1]  # ∫ ∂²w/∂x² dx = 0: a constant only costs digits
    storage = (eps * dc_e_dt * lengths) @ w
    diffusion = (eps_b * phi * lengths) @ w_xx
    source = sign * mean_source[..., None] * ((q * lengths) @ w)
    return (storage - diffusion - source) / (mean_source[..., None] * (lengths @ w))


def _stop_gradient(xp, a):
    """``a``'s value, cut from the autodiff graph of torch or JAX (NumPy: ``a``)."""
    name = getattr(xp, "__name__", "")
    if name == "jax.numpy":
        import jax

        return jax.lax.stop_gradient(a)
    return a.detach() if name == "torch" and hasattr(a, "detach") else a
