"""``battery.p2d:reference``: PyBaMM's DFN (pseudo-two-dimensional) model with ``Chen2020``.

Same parameter set, inputs and C-rate as ``battery.spm:reference``; only the model differs. The
mesh was chosen against a mesh twice as fine in both directions (40 volumes per region across
the cell, 120 packed volumes per particle), at four corners of the domain (scales 1/1 at 1C,
0.1/0.1 at 2C, 10/10 at 2C, 0.3/3 at 0.5C), voltage RMSE every 10 s up to the cut-off:

| volumes (x per region, r per particle) | voltage RMSE, worst corner | cut-off time, worst corner |
| --- | --- | --- |
| PyBaMM's default (20, 20 uniform)      | 71 mV                       | +9.4 %                     |
| 10, 20 packed                          | 3.3 mV                      | −0.21 %                    |
| 20, 30 packed                          | 1.3 mV                      | −0.10 %                    |
| **20, 60 packed** (this module)        | 0.5 mV                      | −0.02 %                    |

The worst corner is always the slow positive particle at 2C. A solve takes 0.1-0.3 s on one core
(against about 35 ms for the SPM reference). Past its cut-off the voltage follows the tangent
there (``pybamm_reference``: the DFN itself has no solution once a particle's surface empties). ``tests/surrogates/test_battery_p2d.py`` re-measures
the last row.
"""

from __future__ import annotations

from surrogates.battery.pybamm_reference import INPUTS, PybammReference

__all__ = ["CELLS", "INPUTS", "PARTICLE_VOLUMES", "REFERENCE", "simulation", "solve", "solve_many", "window"]

CELLS = (("x_n", 20), ("x_s", 20), ("x_p", 20))
PARTICLE_VOLUMES = 60
REFERENCE = PybammReference("DFN", PARTICLE_VOLUMES, CELLS, solve_past_cutoff=False)
simulation = REFERENCE.simulation
solve = REFERENCE.solve
solve_many = REFERENCE.solve_many
window = REFERENCE.window
