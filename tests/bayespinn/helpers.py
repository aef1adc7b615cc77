"""Shared builders for bayespinn tests: a valid SMIB study and data set in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bayespinn.simulate import simulate

DEMO_VALUES = {"m": 0.4, "d": 0.15, "B": 0.2, "P": 0.1, "delta0": 0.1, "omega0": 0.1}

STUDY = """
[surrogate]
name = "{surrogate}"

[data]
path = "data.csv"

[conditions]
B = 0.2
P = 0.1
delta0 = 0.1
omega0 = 0.1

[parameters.m]
prior = "loguniform"
lower = 0.1
upper = 1.0

[parameters.d]
prior = "uniform"
lower = 0.05
upper = 0.5

[noise]
sigma = {sigma}

[inference]
chains = 2
warmup = {warmup}
samples = {samples}
seed = 0
{inference_extra}
[truth]
m = 0.4
d = 0.15

[output]
dir = "run"
"""


def write_study(
    folder: Path,
    points: int = 41,
    noise: float = 0.01,
    surrogate: str = "power.smib",
    sigma: str = '"infer"',
    warmup: int = 300,
    samples: int = 300,
    inference_extra: str = "",
) -> Path:
    frame = simulate("power.smib", DEMO_VALUES, np.linspace(0.0, 20.0, points), noise=noise, seed=0)
    frame.to_csv(folder / "data.csv", index=False)
    path = folder / "study.toml"
    if "surrogate_error" not in inference_extra and "correct" not in inference_extra:
        # The pipeline's tests pin the cheaper error model; the default ("auto": correlated for
        # power.smib) has its own tests and asks for more draws to reach 400 effective ones.
        inference_extra += 'surrogate_error = "rmse"\n'
    text = STUDY.format(
        surrogate=surrogate, sigma=sigma, warmup=warmup, samples=samples, inference_extra=inference_extra
    )
    path.write_text(text)
    return path
