"""The ``battery.spm`` PINN: the particle network's training problem, and its error checks.

The network learns N in F = lead + τ·M, M = planar + N (see ``particle``), from the diffusion
residual and the surface-flux condition alone; no solver output enters its loss. Written in
s = √τ the residual of H = τ·M = s²·M is free of the early-time singularity:

    M + (s/2)·M_s − s²·(M_r̃r̃ + (2/r̃)·M_r̃) = 0,        s·M_r̃(1, s) = deficit(s)/s,

where deficit(s) = 1 − ∂F_lead/∂r̃ at the surface (→ 2s/√π as s → 0).
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import brentq

from surrogates.battery import chen2020, particle, spm_reference
from surrogates.pinn.card import save_residuals, save_weights
from surrogates.pinn.network import MLP, mlp_apply
from surrogates.pinn.trainer import TrainConfig, hardware_description, train
from surrogates.pinn.validation import rmse_stats, sobol_design

__all__ = [
    "DISCHARGE_FRACTIONS",
    "DOMAIN",
    "SPM_CONFIG",
    "WEIGHTS",
    "ParticleProblem",
    "crossing_time",
    "cutoff_time",
    "network_fn",
    "predict",
    "surface_stoichiometries",
    "train_spm",
    "validate_spm",
    "validate_voltage",
    "validation_design",
]

# Parameters and condition: the box of the issue; time up to 1.5 nominal discharges.
DOMAIN = {
    "positive_diffusivity_scale": (0.1, 10.0),
    "negative_j0_scale": (0.1, 10.0),
    "c_rate": (0.5, 2.0),
}
T_MAX_NOMINAL = 1.5  # × 3600 s / c_rate
ANSATZ = (
    "x = x0 + A·F(r̃, τ); F = lead(r̃, τ) + τ·[planar(r̃, √τ) + N] for τ ≤ 1, blended (C² step on "
    "τ ∈ [0.75, 1]) into 3τ + r̃²/2 − 3/10; one network for both particles (surrogates/battery/particle.py)"
)

WEIGHTS = Path(__file__).parent / "weights" / "spm.safetensors"
# Where the held-out residual curves are stored: t / cut-off time, finer near the cut-off, where
# the voltage (and the surrogate's error) changes fastest.
DISCHARGE_FRACTIONS = np.union1d(np.linspace(0.0, 1.0, 181), 1.0 - np.geomspace(0.1, 1e-4, 60))

SPM_CONFIG = TrainConfig(
    hidden=(32, 32, 32, 32),
    adam_steps=4_000,
    lr_start=3e-3,
    lr_end=1e-4,
    collocation_batch=2_048,
    lbfgs_steps=3_000,
    lbfgs_collocation=8_192,
    lbfgs_resample_every=500,
    data_weight=0.0,
    checkpoint_every=250,
)


def network_fn(xp, weights: dict, n_layers: int):
    """x ↦ N(x) for encoded inputs, in the namespace ``xp``."""
    return lambda x: mlp_apply(xp, weights, x, n_layers)


@dataclass
class ParticleProblem:
    """Collocation in (r̃, s): half uniform, half inside the surface layer (1 − r̃ ≲ 3s), with s
    drawn denser near 0 where the layer is thin."""

    bc_weight: float = 1.0

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        s = torch.rand(n, generator=gen) ** 2 * math.sqrt(particle.TAU_MAX) + 1e-4
        uniform = torch.rand(n, generator=gen)
        in_layer = 1.0 - 3.0 * s * torch.rand(n, generator=gen)
        r = torch.where(torch.arange(n) % 2 == 0, uniform, in_layer).clamp(1e-3, 1.0)
        return torch.stack([r, s], -1)

    @staticmethod
    def _n(model, r, s):
        zeta = particle.layer(torch, r, s)
        return particle.planar(torch, r, s) + model(particle.encode(torch, r * r, s, zeta))[..., 0]

    def physics_loss(self, model, x: torch.Tensor) -> torch.Tensor:
        r = x[:, 0].clone().requires_grad_(True)
        s = x[:, 1].clone().requires_grad_(True)
        n = self._n(model, r, s)
        n_r, n_s = torch.autograd.grad(n.sum(), (r, s), create_graph=True)
        (n_rr,) = torch.autograd.grad(n_r.sum(), r, create_graph=True)
        residual = n + 0.5 * s * n_s - s * s * (n_rr + 2.0 * n_r / r)
        surface = torch.ones_like(s).requires_grad_(True)
        n1 = self._n(model, surface, s)
        (n1_r,) = torch.autograd.grad(n1.sum(), surface, create_graph=True)
        bc = s * n1_r - particle.flux_deficit(torch, s * s) / s
        return residual.square().mean() + self.bc_weight * bc.square().mean()

    def data_loss(self, model, batch):  # physics only
        raise NotImplementedError


def surface_error(weights: dict, n_layers: int, n: int = 2001) -> dict:
    """max |F_net(1, τ) − F_series(1, τ)| over τ ∈ [1e-6, 1.5], and where it sits."""
    tau = np.concatenate([np.geomspace(1e-6, 1e-2, n // 2), np.linspace(1e-2, 1.5, n - n // 2)])
    net = particle.surface(np, network_fn(np, weights, n_layers), tau)
    err = np.abs(net - particle.series_surface(tau))
    return {
        "max_abs": float(err.max()),
        "at_tau": float(tau[err.argmax()]),
        "median_abs": float(np.median(err)),
    }


def surface_stoichiometries(xp, weights: dict, n_layers: int, t, positive_diffusivity_scale, c_rate):
    """(x_n, x_p) at the particle surfaces; the negative particle does not depend on the scales."""
    current = chen2020.CAPACITY_AH * c_rate
    net = network_fn(xp, weights, n_layers)
    out = []
    for domain, scale in (("negative", 1.0), ("positive", positive_diffusivity_scale)):
        rate, amplitude = chen2020.particle_rates(domain, current, scale)
        out.append(chen2020.ELECTRODES[domain]["x0"] + amplitude * particle.surface(xp, net, rate * t))
    return tuple(out)


def predict(
    xp, weights: dict, n_layers: int, t, positive_diffusivity_scale, negative_j0_scale, c_rate
) -> dict:
    """``Voltage [V]`` at times ``t`` [s] (an array of ``xp``) and any broadcastable inputs."""
    x_n, x_p = surface_stoichiometries(xp, weights, n_layers, t, positive_diffusivity_scale, c_rate)
    current = chen2020.CAPACITY_AH * c_rate
    return {"Voltage [V]": chen2020.voltage(xp, x_n, x_p, current, negative_j0_scale)}


def crossing_time(voltage, c_rate: float) -> float:
    """First time [s] ``voltage(t)`` (NumPy) reaches the 2.5 V cut-off, to 1e-6 s."""
    grid = np.linspace(0.0, T_MAX_NOMINAL * 3600.0 / c_rate, 20_001)

    def above(t):
        return voltage(np.asarray(t, float)) - chen2020.CUTOFF_V

    below = np.flatnonzero(above(grid) <= 0.0)
    if below.size == 0:
        return math.inf
    i = int(below[0])
    return float(brentq(above, grid[i - 1], grid[i], xtol=1e-6))


def cutoff_time(weights: dict, n_layers: int, **values) -> float:
    """First time [s] the surrogate's voltage reaches the 2.5 V cut-off (NumPy, to 1e-6 s)."""
    return crossing_time(
        lambda t: predict(np, weights, n_layers, t, **values)["Voltage [V]"], values["c_rate"]
    )


def validate_voltage(voltage, reference, design: list[dict]) -> dict:
    """Voltage RMSE of ``voltage(t, **values)`` on ``reference``'s window (every 10 s before its
    2.5 V cut-off), the cut-off time error, and the residual curves, at each point of ``design``."""
    rmse, cut_rel, points, curves = [], [], [], []
    for values in design:
        times, ref, t_cut = reference.window(**values)
        rmse.append(float(np.sqrt(np.mean((voltage(times, **values) - ref) ** 2))))
        cut_rel.append(crossing_time(lambda t, v=values: voltage(t, **v), values["c_rate"]) / t_cut - 1.0)
        at = DISCHARGE_FRACTIONS * t_cut
        curves.append(voltage(at, **values) - reference.solve(at, **values)["Voltage [V]"])
        points.append({**values, "rmse_V": rmse[-1], "cutoff_rel_error": cut_rel[-1], "cutoff_s": t_cut})
    cut = np.abs(np.array(cut_rel))
    return {
        "rmse": {"Voltage [V]": rmse_stats(np.array(rmse))},
        "cutoff_time": {
            "median_abs_rel_error": float(np.median(cut)),
            "p95_abs_rel_error": float(np.quantile(cut, 0.95)),
            "max_abs_rel_error": float(cut.max()),
            "share_within_0.2%": float(np.mean(cut <= 2e-3)),
            "share_within_0.5%": float(np.mean(cut <= 5e-3)),
        },
        "points": points,
        # The correlated error model reads these: curves of different lengths share one grid when
        # time is counted as the fraction of each cell's own discharge (t / its cut-off time).
        "arrays": {
            "discharge_fraction": DISCHARGE_FRACTIONS,
            "cutoff_s": np.array([p["cutoff_s"] for p in points]),
            **{k: np.array([p[k] for p in points]) for k in DOMAIN},
            "residual: Voltage [V]": np.array(curves),
        },
    }


def validation_design(n_points: int, seed: int) -> list[dict]:
    """Held-out inputs: scrambled Sobol points over log10 of both scales and c_rate."""
    box = {
        "log10_positive_diffusivity_scale": (-1.0, 1.0),
        "log10_negative_j0_scale": (-1.0, 1.0),
        "c_rate": DOMAIN["c_rate"],
    }
    d = sobol_design(box, n_points, seed)
    return [
        {
            "positive_diffusivity_scale": 10.0 ** d["log10_positive_diffusivity_scale"][i],
            "negative_j0_scale": 10.0 ** d["log10_negative_j0_scale"][i],
            "c_rate": float(d["c_rate"][i]),
        }
        for i in range(n_points)
    ]


def design_text(n_points: int, seed: int) -> str:
    return (
        f"{n_points} scrambled Sobol points (seed {seed}) over log10 of both scales in [-1, 1] and "
        "c_rate in [0.5, 2]; PyBaMM's window up to its 2.5 V cut-off every 10 s"
    )


def validate_spm(weights: dict, n_layers: int, n_points: int = 128, seed: int = 20_260) -> dict:
    """``validate_voltage`` against PyBaMM's SPM, and the particle network against the series."""

    def voltage(t, **values):
        return predict(np, weights, n_layers, np.asarray(t, float), **values)["Voltage [V]"]

    return {
        "design": design_text(n_points, seed),
        "reference": f"PyBaMM {_pybamm_version()} SPM, Chen2020, IDAKLU rtol={spm_reference.SOLVER_TOLERANCES['rtol']}, "
        f"{spm_reference.PARTICLE_VOLUMES} finite volumes per particle (exponential mesh packed at the surface)",
        **validate_voltage(voltage, spm_reference, validation_design(n_points, seed)),
        "particle_vs_series": surface_error(weights, n_layers),
    }


def _pybamm_version() -> str:
    import pybamm

    return pybamm.__version__


def train_spm(config: TrainConfig = SPM_CONFIG, out: Path = WEIGHTS, checkpoint=None, progress=True) -> dict:
    """Train the particle network, check it against the series solution and PyBaMM, write the card."""
    model = MLP(3, 1, config.hidden, seed=config.seed)
    record = train(ParticleProblem(), model, config, checkpoint=checkpoint, progress=progress)
    model.double()
    weights = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
    n_layers = len(model.layers)
    validation = validate_spm(weights, n_layers)
    arrays = validation.pop("arrays")
    save_weights(out, weights, _card(config, record, validation, n_layers))
    return save_residuals(out, arrays)  # the correlated surrogate-error model reads these


def _card(config: TrainConfig, record: dict, validation: dict, n_layers: int) -> dict:
    import jax

    device = record["device"]
    return {
        "name": "battery.spm",
        "system": "PyBaMM SPM (Chen2020), constant-current discharge from the default initial state",
        "architecture": {
            "type": "tanh MLP inside an exact similarity ansatz",
            "inputs": ["r̃² (r/R)", "s = sqrt(D t / R²)", "zeta = erfc((1−r̃)/2s) + erfc((1+r̃)/2s)"],
            "hidden": list(config.hidden),
            "outputs": ["N"],
            "n_layers": n_layers,
            "ansatz": ANSATZ,
            "voltage": "U_p − U_n + η_p − η_n with PyBaMM 26's OCP barrier and regularised j0 "
            "(surrogates/battery/chen2020.py, equal to PyBaMM to 1e-10)",
            "dtype": "float64",
        },
        "normalisation": "time, radius, diffusivity scale and C-rate enter through τ = scale·D·t/R² "
        "and A = -j R/(F D c_max) (exact for constant current); negative_j0_scale enters only the "
        "Butler–Volmer overpotential, as in the SPM it changes no concentration",
        "domain": {k: list(v) for k, v in DOMAIN.items()},
        "time_window": f"t in [0, {T_MAX_NOMINAL} × 3600 s / c_rate]",
        "parameters": ["positive_diffusivity_scale", "negative_j0_scale"],
        "conditions": ["c_rate"],
        "observables": ["Voltage [V]"],
        "training": {
            "config": config.to_dict(),
            "loss": "mean (M + s/2·M_s − s²·ΔM)² + mean (s·M_r(1, s) − deficit(s)/s)², M = planar + N",
            "mix": "physics residual and surface-flux condition only; no solver data",
            "wall_time_s": round(record["wall_time_s"], 1),
            "final_loss": next((h for h in reversed(record["history"]) if "loss" in h), None),
            "device": device,
            "hardware": hardware_description(device),
            "reproduce": "bayespinn train battery.spm",
        },
        "versions": {
            "torch": torch.__version__,
            "jax": jax.__version__,
            "pybamm": _pybamm_version(),
            "python": platform.python_version(),
        },
        "validation": validation,
    }
