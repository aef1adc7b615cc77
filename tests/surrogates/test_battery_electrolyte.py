"""The electrolyte under ``battery.p2d``: its constants against PyBaMM's Chen2020, its basis's
exact properties, the SPMe's voltage terms against PyBaMM's SPMe, and the shipped network against
its card and PyBaMM."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from surrogates.battery import chen2020, electrolyte
from surrogates.pinn.card import load_weights
from surrogates.pinn.network import MLP

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
pybamm = pytest.importorskip("pybamm")


def _mean_overpotential(xp, domain, current_a, sto, c_e, scale=1.0):
    """The SPMe's Butler–Volmer: at the mean surface, the local c_e at each node, averaged."""
    eta = chen2020.overpotential(xp, domain, current_a[..., None], sto[..., None], scale, c_e)
    return electrolyte.region_mean(xp, eta)


@pytest.fixture(scope="module")
def shipped():
    weights, card = load_weights(electrolyte.WEIGHTS)
    return weights, card


def test_constants_and_transport_are_chen2020():
    values = pybamm.ParameterValues("Chen2020")
    for name, value in electrolyte.CONSTANTS.items():
        assert values[name] == value, name
    c_e = np.linspace(50.0, 4000.0, 40)
    for name, mine in (
        ("Electrolyte diffusivity [m2.s-1]", electrolyte.diffusivity),
        ("Electrolyte conductivity [S.m-1]", electrolyte.conductivity),
    ):
        expected = values[name](pybamm.Vector(c_e), pybamm.Scalar(298.15)).evaluate().ravel()
        np.testing.assert_allclose(mine(np, c_e), expected, rtol=1e-13, err_msg=name)


def test_basis_conserves_lithium_and_holds_no_flux_and_flux_continuity():
    # Any coefficients: the electrolyte's lithium is the initial one, no flux leaves at either
    # current collector, and the flux ε^1.5·∂c/∂x is continuous across both interfaces.
    coefficients = np.random.default_rng(0).normal(size=(3, electrolyte.N_MODES))
    edges = np.r_[0.0, np.cumsum(electrolyte.THICKNESS_M)]
    nodes, w = np.polynomial.legendre.leggauss(80)
    lithium = 0.0
    for eps, a, b in zip(electrolyte.POROSITY, edges[:-1], edges[1:], strict=True):
        x = a + (b - a) * (nodes + 1.0) / 2.0
        shape = electrolyte.basis(electrolyte.stretched(x))[0] @ coefficients.T
        lithium = lithium + eps * (b - a) / 2.0 * (w @ shape)
    np.testing.assert_allclose(lithium, 0.0, atol=1e-12 * electrolyte.THICKNESS_M.sum())

    du_dx = electrolyte.POROSITY**-electrolyte.BRUGGEMAN / np.sum(
        electrolyte.POROSITY**-electrolyte.BRUGGEMAN * electrolyte.THICKNESS_M
    )
    slope_u = electrolyte.basis(electrolyte.stretched(edges))[1] @ coefficients.T  # (4 edges, 3)
    np.testing.assert_allclose(slope_u[[0, -1]], 0.0, atol=1e-12)
    h = 1e-12
    for i in (1, 2):  # each interface: ε_left^b ∂c/∂x on the left = ε_right^b ∂c/∂x on the right
        left = electrolyte.basis(electrolyte.stretched(np.array([edges[i] - h])))[1] @ coefficients.T
        right = electrolyte.basis(electrolyte.stretched(np.array([edges[i] + h])))[1] @ coefficients.T
        eps_b = electrolyte.POROSITY**electrolyte.BRUGGEMAN
        np.testing.assert_allclose(eps_b[i - 1] * du_dx[i - 1] * left, eps_b[i] * du_dx[i] * right, rtol=1e-6)


@pytest.fixture(scope="module")
def spme():
    """PyBaMM's SPMe at 2C with a slow negative reaction, to 1,500 s."""
    from surrogates.battery.pybamm_reference import PybammReference

    sim = PybammReference("SPMe", 60, electrolyte.SPME_CELLS, solve_past_cutoff=False).simulation(True)
    inputs = {"positive_diffusivity_scale": 1.0, "negative_j0_scale": 0.3, "c_rate": 2.0}
    return inputs, sim.solve([0.0, 1500.0], inputs=inputs, t_interp=np.linspace(0.0, 1500.0, 31))


def test_voltage_terms_are_pybamm_spme_given_its_concentration(spme):
    # PyBaMM's own c_e and particle surfaces through this module's closure: the SPMe's voltage.
    inputs, sol = spme
    x = sol["x [m]"].entries[:, 0]
    c_e = sol["Electrolyte concentration [mol.m-3]"].entries  # (x, t)
    nodes, _ = np.polynomial.legendre.leggauss(electrolyte.QUADRATURE_NODES)
    edges = np.r_[0.0, np.cumsum(electrolyte.THICKNESS_M)]
    at_nodes = [
        np.stack([np.interp(a + (b - a) * (nodes + 1.0) / 2.0, x, c) for c in c_e.T])
        for a, b in (edges[:2], edges[2:])
    ]
    share = electrolyte.voltage_terms(np, *at_nodes, inputs["c_rate"])
    expected = sum(sol[k].entries for k in electrolyte._SPME_SHARE)
    np.testing.assert_allclose(share, expected, rtol=0, atol=1e-4)

    x_n = sol["X-averaged negative particle surface stoichiometry"].entries
    x_p = sol["X-averaged positive particle surface stoichiometry"].entries
    current = chen2020.CAPACITY_AH * inputs["c_rate"] + 0.0 * x_n
    voltage = (
        chen2020.ocp_positive(np, x_p)
        - chen2020.ocp_negative(np, x_n)
        + _mean_overpotential(np, "positive", current, x_p, at_nodes[1])
        - _mean_overpotential(np, "negative", current, x_n, at_nodes[0], inputs["negative_j0_scale"])
        + share
    )
    np.testing.assert_allclose(voltage, sol["Voltage [V]"].entries, rtol=0, atol=5e-4)


def test_shipped_network_meets_its_card_against_pybamm_spme(shipped):
    weights, card = shipped
    n_layers = card["architecture"]["n_layers"]
    recorded = {p["c_rate"]: p for p in card["validation"]["points"]}
    for c_rate in (1.0, 2.0):
        t, x, c_ref, share_ref = electrolyte.spme_solution(c_rate)
        rate = np.full_like(t, c_rate)
        c = electrolyte.concentration(
            np, weights, n_layers, t, rate, electrolyte.basis(electrolyte.stretched(x))[0]
        )
        share = electrolyte.voltage_terms(
            np, *electrolyte.quadrature_concentrations(np, weights, n_layers, t, rate), c_rate
        )
        rmse = np.sqrt(np.mean((c.T - c_ref) ** 2))
        np.testing.assert_allclose(rmse, recorded[c_rate]["c_e_rmse_mol_m3"], rtol=1e-6)
        assert rmse <= electrolyte.BARS["c_e_rmse_mol_m3"], (c_rate, rmse)
        share_rmse = np.sqrt(np.mean((share - share_ref) ** 2))
        assert share_rmse <= electrolyte.BARS["voltage_share_rmse_V"], (c_rate, share_rmse)


def test_shipped_network_solves_the_diffusion_equation(shipped):
    # The residual on fresh collocation points is as small as training left it.
    weights, card = shipped
    model = MLP(
        len(electrolyte.TIME_SCALES_S) + 1, electrolyte.N_MODES, card["architecture"]["hidden"]
    ).double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    problem = electrolyte.ElectrolyteResidual()
    x = problem.sample(4096, torch.Generator().manual_seed(123))
    with torch.no_grad():
        loss = float(problem.physics_loss(model, x))
    assert loss <= 2.0 * card["training"]["final_loss"]["physics"], loss
    # and it is a real constraint: the initial state alone (no transport at all) is far off
    with torch.no_grad():
        model.layers[-1].weight.zero_()
        model.layers[-1].bias.zero_()
        assert float(problem.physics_loss(model, x)) > 100.0 * loss


def test_state_once_is_state_whether_traced_or_known(shipped):
    # Known before tracing, the electrolyte is computed once in NumPy and enters as a constant;
    # traced (a C-rate a sampler varies), it is computed by JAX: the two agree.
    import jax
    import jax.numpy as jnp

    weights = {k: jnp.asarray(v) for k, v in shipped[0].items()}
    t = jnp.linspace(0.0, 3000.0, 31)
    known = jax.jit(lambda: electrolyte.state_once(jnp, weights, t, jnp.asarray(1.3)))()
    traced = jax.jit(lambda c_rate: electrolyte.state_once(jnp, weights, t, c_rate))(jnp.asarray(1.3))
    expected = electrolyte.state(np, shipped[0], np.asarray(t), 1.3)
    for a, b, c in zip(known, traced, expected, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-12)
        np.testing.assert_allclose(b, c, rtol=1e-12)
