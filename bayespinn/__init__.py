"""bayespinn: Bayesian inverse problems with physics-informed neural network surrogates.

User layer: study files, data, the calibration pipeline, reports and the ``bayespinn`` command.
"""

__version__ = "0.1.0"
