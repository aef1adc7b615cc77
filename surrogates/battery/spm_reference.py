"""``battery.spm:reference``: PyBaMM's SPM with ``Chen2020``, built once and re-solved with inputs.

The particles are meshed finer than PyBaMM's default: 400 finite volumes per particle on an
exponential mesh packed towards the surface. Measured against the eigenfunction series solution
of the same equations, PyBaMM's default (20 uniform volumes) puts the cut-off of a slow particle
(scale 0.1, 2C) 9.4 % late; 100 packed volumes put a cell's cut-off (scale 0.26, 1.8C) 0.12 s
early, which a record sampled 0.1 s before the cut-off turns into 10.7 mV RMSE (the last sample
sits on the cliff); 400 volumes, 0.0075 s and 0.6 mV. The error falls as the square of the mesh
size; a solve takes about 35 ms. The machinery is ``pybamm_reference``'s.
"""

from __future__ import annotations

from surrogates.battery.pybamm_reference import INPUTS, SOLVER_TOLERANCES, PybammReference, parameter_values

__all__ = [
    "INPUTS",
    "PARTICLE_VOLUMES",
    "REFERENCE",
    "SOLVER_TOLERANCES",
    "parameter_values",
    "simulation",
    "solve",
    "solve_many",
    "window",
]

PARTICLE_VOLUMES = 400
REFERENCE = PybammReference("SPM", PARTICLE_VOLUMES)
simulation = REFERENCE.simulation
solve = REFERENCE.solve
solve_many = REFERENCE.solve_many
window = REFERENCE.window
