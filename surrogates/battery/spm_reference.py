"""``battery.spm:reference``: PyBaMM's SPM with ``Chen2020``, built once and re-solved with inputs.

The two scales and the C-rate are PyBaMM input parameters, so the model is discretised and
compiled once (IDAKLU) and every new parameter set is a re-solve. The particles are meshed finer
than PyBaMM's default: 400 finite volumes per particle on an exponential mesh packed towards the
surface. Measured against the eigenfunction series solution of the same equations, PyBaMM's
default (20 uniform volumes) puts the cut-off of a slow particle (scale 0.1, 2C) 9.4 % late; 100
packed volumes put a cell's cut-off (scale 0.26, 1.8C) 0.12 s early, which a record sampled 0.1 s
before the cut-off turns into 10.7 mV RMSE (the last sample sits on the cliff); 400 volumes, 0.0075 s
and 0.6 mV. The error falls as the square of the mesh size; a solve takes about 35 ms.

Two simulations share the parameter set: ``window`` stops at the 2.5 V cut-off like a cycler
(validation, synthetic data); ``continued`` drops the voltage and stoichiometry events so that a
likelihood can ask for any time: past the cut-off the concentrations keep obeying their linear
equations and the voltage stays finite (it plunges), as the surrogate's does.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from surrogates.battery import chen2020

__all__ = ["INPUTS", "PARTICLE_VOLUMES", "simulation", "solve", "solve_many", "window"]

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

INPUTS = ("positive_diffusivity_scale", "negative_j0_scale", "c_rate")
PARTICLE_VOLUMES = 400
SOLVER_TOLERANCES = {"rtol": 1e-9, "atol": 1e-11}


def parameter_values():
    import pybamm

    values = pybamm.ParameterValues("Chen2020")
    diffusivity = values["Positive particle diffusivity [m2.s-1]"]
    j0 = values["Negative electrode exchange-current density [A.m-2]"]

    def scaled_j0(c_e, c_s_surf, c_s_max, T):
        return pybamm.InputParameter("negative_j0_scale") * j0(c_e, c_s_surf, c_s_max, T)

    values.update(
        {
            "Positive particle diffusivity [m2.s-1]": diffusivity
            * pybamm.InputParameter("positive_diffusivity_scale"),
            "Negative electrode exchange-current density [A.m-2]": scaled_j0,
            "Current function [A]": chen2020.CAPACITY_AH * pybamm.InputParameter("c_rate"),
        }
    )
    return values


@functools.cache
def simulation(stop_at_cutoff: bool, threads: int = 1):
    """The built simulation (cached per process): discretised and compiled once."""
    import pybamm

    model = pybamm.lithium_ion.SPM()
    if not stop_at_cutoff:
        model.events = []
    submeshes = dict(model.default_submesh_types)
    packed = pybamm.MeshGenerator(pybamm.Exponential1DSubMesh, submesh_params={"side": "right", "stretch": 3})
    submeshes["negative particle"] = submeshes["positive particle"] = packed
    var_pts = {"x_n": 5, "x_s": 5, "x_p": 5, "r_n": PARTICLE_VOLUMES, "r_p": PARTICLE_VOLUMES}
    # A likelihood needs the voltage only: IDAKLU then returns just that, not 800 states per time.
    outputs = {} if stop_at_cutoff else {"output_variables": ["Voltage [V]"]}
    solver = pybamm.IDAKLUSolver(**SOLVER_TOLERANCES, options={"num_threads": threads}, **outputs)
    sim = pybamm.Simulation(
        model, parameter_values=parameter_values(), var_pts=var_pts, submesh_types=submeshes, solver=solver
    )
    sim.build()
    return sim


def _inputs(values: dict) -> dict[str, float]:
    return {k: float(values[k]) for k in INPUTS}


def solve(t_s, **values) -> dict[str, np.ndarray]:
    """``Voltage [V]`` at times ``t_s`` (any, including past the cut-off)."""
    t = np.asarray(t_s, float)
    end = max(float(t.max()), 1.0)
    sol = simulation(False).solve([0.0, end], inputs=_inputs(values), t_interp=t)
    return {"Voltage [V]": np.asarray(sol["Voltage [V]"](t))}


def solve_many(t_s, values: list[dict], threads: int = 1, chunk: int = 256) -> np.ndarray:
    """Voltage (n, len(t_s)) for a list of parameter sets through PyBaMM's list-of-inputs solve
    (``threads`` OpenMP threads), ``chunk`` sets per call to bound memory."""
    t = np.asarray(t_s, float)
    sim = simulation(False, threads=threads)
    rows = []
    for start in range(0, len(values), chunk):
        inputs = [_inputs(v) for v in values[start : start + chunk]]
        sols = sim.solve([0.0, max(float(t.max()), 1.0)], inputs=inputs, t_interp=t)
        sols = sols if isinstance(sols, list) else [sols]  # PyBaMM unwraps a list of one
        rows.extend(np.asarray(s["Voltage [V]"](t)) for s in sols)
    return np.stack(rows)


def window(dt_s: float = 10.0, **values) -> tuple[np.ndarray, np.ndarray, float]:
    """PyBaMM's own window: (times every ``dt_s`` before the cut-off, voltage there, cut-off time [s])."""
    c_rate = float(values["c_rate"])
    t_max = 1.5 * 3600.0 / c_rate  # far past any cut-off in the domain; the event ends it
    grid = np.arange(0.0, t_max, dt_s)
    sol = simulation(True).solve([0.0, t_max], inputs=_inputs(values), t_interp=grid)
    t_cut = float(sol.t[-1])
    if sol.termination != "event: Minimum voltage [V]":
        raise RuntimeError(f"PyBaMM stopped with {sol.termination!r} at {t_cut:g} s for {values}")
    times = grid[grid < t_cut]
    return times, np.asarray(sol["Voltage [V]"](times)), t_cut
