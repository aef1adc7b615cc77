"""A PyBaMM model with ``Chen2020``, built once and re-solved with inputs (SPM, DFN).

The two scales and the C-rate are PyBaMM input parameters, so a model is discretised and
compiled once (IDAKLU) and every new parameter set is a re-solve. ``window`` stops at the 2.5 V
cut-off like a cycler (validation, synthetic data). ``solve`` answers at any time, as a
likelihood asks, in one of two ways:

- ``solve_past_cutoff``: the model runs without its voltage and stoichiometry events. The SPM's
  particles keep obeying their linear equations past the cut-off and the voltage stays finite (it
  plunges), as a surrogate's does.
- otherwise (the DFN): the DFN has no solution once a particle's surface empties, a few seconds
  past the cut-off, and IDAKLU grinds for minutes before it says so (measured: 175 s at scales
  0.1/0.1, 2C). So the model stops at its cut-off and the voltage continues along its tangent
  there, a line as steep as the cliff it ends on: finite, continuous, and far below any record
  that goes on.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from surrogates.battery import chen2020

__all__ = ["INPUTS", "SOLVER_TOLERANCES", "PybammReference", "parameter_values"]

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

INPUTS = ("positive_diffusivity_scale", "negative_j0_scale", "c_rate")
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


def _inputs(values: dict) -> dict[str, float]:
    return {k: float(values[k]) for k in INPUTS}


@functools.cache
def _simulation(model_name: str, cells: tuple, particle_volumes: int, stop_at_cutoff: bool, threads: int):
    import pybamm

    model = getattr(pybamm.lithium_ion, model_name)()
    if not stop_at_cutoff:
        model.events = []
    submeshes = dict(model.default_submesh_types)
    # Packed towards the surface, where a slow particle's concentration bends: PyBaMM's default
    # (20 uniform volumes) puts a slow particle's cut-off 9.4 % late (SPM and DFN alike).
    packed = pybamm.MeshGenerator(pybamm.Exponential1DSubMesh, submesh_params={"side": "right", "stretch": 3})
    submeshes["negative particle"] = submeshes["positive particle"] = packed
    var_pts = {**dict(cells), "r_n": particle_volumes, "r_p": particle_volumes}
    # A likelihood needs the voltage only: IDAKLU then returns just that, not every state per time.
    outputs = {} if stop_at_cutoff else {"output_variables": ["Voltage [V]"]}
    solver = pybamm.IDAKLUSolver(**SOLVER_TOLERANCES, options={"num_threads": threads}, **outputs)
    sim = pybamm.Simulation(
        model, parameter_values=parameter_values(), var_pts=var_pts, submesh_types=submeshes, solver=solver
    )
    sim.build()
    return sim


@dataclass(frozen=True)
class PybammReference:
    """``model_name`` of ``pybamm.lithium_ion`` on ``cells`` finite volumes per region across the
    cell and ``particle_volumes`` per particle (packed towards the surface)."""

    model_name: str
    particle_volumes: int
    cells: tuple[tuple[str, int], ...] = (("x_n", 5), ("x_s", 5), ("x_p", 5))
    solve_past_cutoff: bool = True

    def simulation(self, stop_at_cutoff: bool, threads: int = 1):
        """The built simulation (cached per process)."""
        return _simulation(self.model_name, self.cells, self.particle_volumes, stop_at_cutoff, threads)

    def _any_time(self, threads: int = 1):
        return self.simulation(not self.solve_past_cutoff, threads)

    def _t_interp(self, t: np.ndarray):
        # Stopped at the cut-off, the solver's own steps are kept: dense on the cliff, where the
        # tangent is taken.
        return t if self.solve_past_cutoff else None

    def _voltage(self, sol, t: np.ndarray) -> np.ndarray:
        """The voltage at ``t``; past a solution's end, along its tangent there."""
        end = float(sol.t[-1])
        inside = np.minimum(t, end)
        volts = np.asarray(sol["Voltage [V]"](inside))
        if self.solve_past_cutoff or not (t > end).any():
            return volts
        # The slope over the last solver step, the cliff's.
        v_end, v_before = (float(v) for v in sol["Voltage [V]"](sol.t[[-1, -2]]))
        slope = (v_end - v_before) / (end - float(sol.t[-2]))
        return np.where(t > end, v_end + slope * (t - end), volts)

    def solve(self, t_s, **values) -> dict[str, np.ndarray]:
        """``Voltage [V]`` at times ``t_s`` (any, including past the cut-off)."""
        t = np.asarray(t_s, float)
        end = max(float(t.max()), 1.0)
        sol = self._any_time().solve([0.0, end], inputs=_inputs(values), t_interp=self._t_interp(t))
        return {"Voltage [V]": self._voltage(sol, t)}

    def solve_many(self, t_s, values: list[dict], threads: int = 1, chunk: int = 32) -> np.ndarray:
        """Voltage (n, len(t_s)) for a list of parameter sets through PyBaMM's list-of-inputs
        solve (``threads`` OpenMP threads), ``chunk`` sets per call to bound memory: a DFN
        solution stopped at its cut-off keeps its whole state (2,600 values per step), and 256
        of them at once took 8 GB inside an importance correction."""
        t = np.asarray(t_s, float)
        sim = self._any_time(threads)
        rows = []
        for start in range(0, len(values), chunk):
            inputs = [_inputs(v) for v in values[start : start + chunk]]
            sols = sim.solve([0.0, max(float(t.max()), 1.0)], inputs=inputs, t_interp=self._t_interp(t))
            sols = sols if isinstance(sols, list) else [sols]  # PyBaMM unwraps a list of one
            rows.extend(self._voltage(s, t) for s in sols)
        return np.stack(rows)

    def window(self, dt_s: float = 10.0, **values) -> tuple[np.ndarray, np.ndarray, float]:
        """PyBaMM's own window: (times every ``dt_s`` before the cut-off, voltage there, cut-off
        time [s])."""
        c_rate = float(values["c_rate"])
        t_max = 1.5 * 3600.0 / c_rate  # far past any cut-off in the domain; the event ends it
        grid = np.arange(0.0, t_max, dt_s)
        sol = self.simulation(True).solve([0.0, t_max], inputs=_inputs(values), t_interp=grid)
        t_cut = float(sol.t[-1])
        if sol.termination != "event: Minimum voltage [V]":
            raise RuntimeError(f"PyBaMM stopped with {sol.termination!r} at {t_cut:g} s for {values}")
        times = grid[grid < t_cut]
        return times, np.asarray(sol["Voltage [V]"](times)), t_cut
