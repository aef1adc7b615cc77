"""``battery.p2d:reference``: PyBaMM's DFN on our mesh, re-measured against a finer mesh and
against a plain PyBaMM DFN built without our input parameters."""

from __future__ import annotations

import numpy as np
import pytest

from surrogates import registry
from surrogates.battery import chen2020, p2d_reference, spm_reference
from surrogates.battery.pybamm_reference import PybammReference

SLOW = {"positive_diffusivity_scale": 0.1, "negative_j0_scale": 0.1, "c_rate": 2.0}
NOMINAL = {"positive_diffusivity_scale": 1.0, "negative_j0_scale": 1.0, "c_rate": 1.0}


def _rmse_mV(a, b):
    return 1e3 * float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_mesh_is_converged_at_the_slow_corner():
    # The module's table: 0.5 mV and -0.02 % against a mesh twice as fine; PyBaMM's default mesh
    # is 71 mV and 9.4 % off here, so a lost mesh setting fails this test.
    fine = PybammReference(
        "DFN", 2 * p2d_reference.PARTICLE_VOLUMES, tuple((k, 2 * n) for k, n in p2d_reference.CELLS)
    )
    times, volts, t_cut = p2d_reference.window(**SLOW)
    _, _, t_cut_fine = fine.window(**SLOW)
    t = times[times < min(t_cut, t_cut_fine)]
    assert _rmse_mV(volts[: len(t)], fine.solve(t, **SLOW)["Voltage [V]"]) < 1.0
    assert abs(t_cut / t_cut_fine - 1.0) < 5e-4


def _plain_dfn_voltage(t, values):
    # The DFN as PyBaMM ships it: Chen2020 with the scales written into the parameter set itself
    # (no input parameters), PyBaMM's default mesh; the scales avoid the slow corner, where that
    # mesh is off.
    import pybamm

    params = pybamm.ParameterValues("Chen2020")
    j0 = params["Negative electrode exchange-current density [A.m-2]"]
    scale = values["negative_j0_scale"]
    params.update(
        {
            "Positive particle diffusivity [m2.s-1]": params["Positive particle diffusivity [m2.s-1]"]
            * values["positive_diffusivity_scale"],
            "Negative electrode exchange-current density [A.m-2]": lambda *a: scale * j0(*a),
            "Current function [A]": chen2020.CAPACITY_AH * values["c_rate"],
        }
    )
    sim = pybamm.Simulation(pybamm.lithium_ion.DFN(), parameter_values=params)
    sol = sim.solve([0.0, float(t[-1])], t_interp=t)
    return np.asarray(sol["Voltage [V]"](t))


@pytest.mark.parametrize(
    "values", [NOMINAL, {"positive_diffusivity_scale": 3.0, "negative_j0_scale": 0.5, "c_rate": 1.5}]
)
def test_scales_reach_pybamm_dfn(values):
    times, volts, _ = p2d_reference.window(**values)
    assert _rmse_mV(volts, _plain_dfn_voltage(times, values)) < 2.0


def test_is_the_dfn_not_the_spm():
    # Electrolyte polarisation and ohmic losses put the DFN's 1C voltage tens of mV below the SPM's.
    times, volts, _ = p2d_reference.window(**NOMINAL)
    gap = spm_reference.solve(times, **NOMINAL)["Voltage [V]"] - volts
    assert 0.03 < float(np.median(gap)) < 0.1
    sol = p2d_reference.simulation(True).solve([0.0, 600.0], inputs=NOMINAL)
    c_e = sol["Electrolyte concentration [mol.m-3]"].entries[:, -1]
    assert c_e.max() - c_e.min() > 100.0  # mol/m3 across the cell, none in an SPM


def test_batched_solve_equals_single_solves():
    t = np.linspace(0.0, 1500.0, 16)
    rows = [NOMINAL, SLOW, {"positive_diffusivity_scale": 5.0, "negative_j0_scale": 0.3, "c_rate": 0.7}]
    batch = p2d_reference.solve_many(t, rows, threads=2)
    for row, volts in zip(rows, batch, strict=True):
        np.testing.assert_allclose(volts, p2d_reference.solve(t, **row)["Voltage [V]"], atol=1e-6)


def test_registry_model_follows_the_dfn_cutoff():
    model = registry.load("battery.p2d:reference")
    assert model.parameters == ("positive_diffusivity_scale", "negative_j0_scale")
    times = model.default_times(**NOMINAL)
    _, _, t_cut = p2d_reference.window(**NOMINAL)
    _, _, t_cut_spm = spm_reference.window(**NOMINAL)
    assert times[-1] < t_cut <= times[-1] + 10.0
    assert abs(t_cut - t_cut_spm) > 10.0  # the two models' windows differ
