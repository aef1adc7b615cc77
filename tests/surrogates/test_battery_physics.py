"""The SPM's physics written out in ``chen2020`` and ``particle`` against PyBaMM and closed forms."""

from __future__ import annotations

import os

import numpy as np
import pytest

from surrogates.battery import chen2020, particle

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
pybamm = pytest.importorskip("pybamm")


@pytest.fixture(scope="module")
def parameter_values():
    return pybamm.ParameterValues("Chen2020")


def test_constants_are_chen2020(parameter_values):
    for name, value in chen2020.CONSTANTS.items():
        assert parameter_values[name] == value, name


@pytest.mark.parametrize("domain", ["negative", "positive"])
def test_ocp_equals_pybamm_including_the_barrier(parameter_values, domain):
    # PyBaMM's own U(sto, T) expression, with U_asymptotes, evaluated after parameter processing.
    sto = np.concatenate([np.linspace(1e-6, 1 - 1e-6, 4001), [1e-4, 1e-3, 0.999, 0.9999]])
    electrode = getattr(pybamm.LithiumIonParameters(), domain[0]).prim
    expected = parameter_values.process_symbol(electrode.U(pybamm.Vector(sto), pybamm.Scalar(298.15)))
    mine = chen2020.ocp_negative(np, sto) if domain == "negative" else chen2020.ocp_positive(np, sto)
    np.testing.assert_allclose(mine, expected.evaluate().ravel(), rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def spm_solutions(parameter_values):
    """PyBaMM SPM runs whose surface stoichiometries sweep far (slow positive particle, 2C)."""
    values = parameter_values.copy()
    j0 = values["Negative electrode exchange-current density [A.m-2]"]
    diffusivity = values["Positive particle diffusivity [m2.s-1]"]
    values.update(
        {
            "Negative electrode exchange-current density [A.m-2]": lambda ce, cs, cm, T: (
                pybamm.InputParameter("k") * j0(ce, cs, cm, T)
            ),
            "Positive particle diffusivity [m2.s-1]": diffusivity * pybamm.InputParameter("D"),
            "Current function [A]": 5.0 * pybamm.InputParameter("c"),
        }
    )
    sim = pybamm.Simulation(pybamm.lithium_ion.SPM(), parameter_values=values, solver=pybamm.IDAKLUSolver())
    cases = [{"k": 1.0, "D": 1.0, "c": 1.0}, {"k": 0.1, "D": 0.1, "c": 2.0}, {"k": 7.0, "D": 10.0, "c": 0.5}]
    return [(case, sim.solve([0, 8000], inputs=case)) for case in cases]


def test_exchange_current_density_and_voltage_equal_pybamm(spm_solutions):
    for case, sol in spm_solutions:
        x_n = sol["X-averaged negative particle surface stoichiometry"].entries
        x_p = sol["X-averaged positive particle surface stoichiometry"].entries
        j0 = sol["X-averaged negative electrode exchange current density [A.m-2]"].entries
        mine = chen2020.exchange_current_density(np, "negative", x_n, case["k"])
        np.testing.assert_allclose(mine, j0, rtol=1e-10)
        j0p = sol["X-averaged positive electrode exchange current density [A.m-2]"].entries
        np.testing.assert_allclose(chen2020.exchange_current_density(np, "positive", x_p), j0p, rtol=1e-10)
        current = sol["Current [A]"].entries
        voltage = chen2020.voltage(np, x_n, x_p, current, case["k"])
        np.testing.assert_allclose(voltage, sol["Voltage [V]"].entries, rtol=0, atol=1e-10)


def test_voltage_stays_finite_and_smooth_past_full_and_empty():
    x = np.linspace(-0.05, 1.05, 2001)
    for ocp in (chen2020.ocp_negative, chen2020.ocp_positive):
        assert np.isfinite(ocp(np, x)).all()
    v = chen2020.voltage(np, 1.0 - x, x, 10.0, 0.1)
    assert np.isfinite(v).all()
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    grad = jax.vmap(jax.grad(lambda xp: chen2020.voltage(jax.numpy, 0.5, xp, 10.0, 0.1)))(
        jax.numpy.asarray(x)
    )
    assert np.isfinite(np.asarray(grad)).all()


def test_lead_term_solves_the_equation_and_starts_at_zero():
    # F_lead is an exact solution: check its residual by finite differences, and F(r, 0) = 0.
    r = np.linspace(0.2, 0.99, 9)[:, None]
    tau = np.array([1e-3, 1e-2, 0.1, 0.5])[None, :]
    h, k = 1e-4, 1e-7
    f = particle.lead(np, r, tau)
    f_t = (particle.lead(np, r, tau + k) - particle.lead(np, r, tau - k)) / (2 * k)
    f_r = (particle.lead(np, r + h, tau) - particle.lead(np, r - h, tau)) / (2 * h)
    f_rr = (particle.lead(np, r + h, tau) - 2 * f + particle.lead(np, r - h, tau)) / h**2
    np.testing.assert_allclose(f_t, f_rr + 2 * f_r / r, atol=2e-5 * np.abs(f_t).max())
    assert np.abs(particle.lead(np, r, 0.0 * tau)).max() == 0.0


def test_series_solution_matches_short_and_long_time_limits():
    # Early: the surface rises as 2·sqrt(τ/π); late: 3τ + 1/5 (the steady profile at r = 1).
    np.testing.assert_allclose(
        particle.series_surface(np.array([1e-6])), 2 * np.sqrt(1e-6 / np.pi), rtol=2e-3
    )
    np.testing.assert_allclose(particle.series_surface(np.array([2.0])), 6.2, rtol=0, atol=1e-12)


def _sphere_surface_by_finite_volumes(tau, flux, shells: int = 800):
    """F(1, τ) for a time-varying surface flux ∂F/∂r̃(1) = flux(τ), F(r̃, 0) = 0: SciPy's BDF on
    ``shells`` finite volumes of equal width, the surface value extrapolated from the last one."""
    from scipy.integrate import solve_ivp

    edges = np.linspace(0.0, 1.0, shells + 1)
    centres = (edges[1:] + edges[:-1]) / 2.0
    volumes = (edges[1:] ** 3 - edges[:-1] ** 3) / 3.0
    h = edges[1] - edges[0]

    def rhs(t, c):
        between = edges[1:-1] ** 2 * np.diff(c) / h  # r² ∂c/∂r̃ on the inner faces
        out = np.zeros_like(c)
        out[:-1] += between
        out[1:] -= between
        out[-1] += flux(t)  # r² ∂c/∂r̃ = flux at r̃ = 1
        return out / volumes

    sol = solve_ivp(rhs, (0.0, tau[-1]), np.zeros(shells), method="BDF", t_eval=tau, rtol=1e-10, atol=1e-12)
    return sol.y[-1] + flux(tau) * (1.0 - centres[-1])


def test_step_response_matrix_superposes_the_exact_sphere_under_a_varying_flux():
    # Duhamel's superposition over the record's times against an independent solve of the sphere
    # (finite volumes, SciPy's BDF) under a flux that rises, falls and reverses sign, as the
    # reaction at a node of the DFN can; and the constant flux's closed form (the series).
    rate = 2e-4  # 1/s: τ reaches 0.72 over 3,600 s, the particles' whole range of shapes
    times = np.r_[np.arange(0.0, 3600.0, 10.0), 3600.0 - np.geomspace(10.0, 1e-2, 20)]
    times = np.unique(times)
    g = particle.step_response_matrix(times, rate)
    np.testing.assert_allclose(g @ np.ones_like(times), particle.series_surface(rate * times), atol=2e-5)

    def flux(tau):
        return 1.0 + 2.0 * np.sin(tau / 0.1)

    late = times > 200.0  # past the thin early layer the finite volumes cannot resolve
    exact = _sphere_surface_by_finite_volumes(rate * times[late], flux)
    np.testing.assert_allclose((g @ flux(rate * times))[late], exact, atol=2e-4 * np.abs(exact).max())
