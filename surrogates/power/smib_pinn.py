"""The ``power.smib`` PINN: training problem, trained surrogate (torch and JAX), validation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from surrogates.pinn.card import save_residuals, save_weights
from surrogates.pinn.network import MLP, mlp_apply
from surrogates.pinn.trainer import TrainConfig, hardware_description, train, training_versions
from surrogates.pinn.validation import rmse_stats, sobol_design
from surrogates.power import smib, smib_reference

__all__ = [
    "PHYSICS_ONLY_CONFIG",
    "SMIB_CONFIG",
    "WEIGHTS",
    "SmibProblem",
    "card_validation",
    "error_by_saddle_margin",
    "predict",
    "train_smib",
    "validate_smib",
    "validation_residuals",
]

WEIGHTS = Path(__file__).parent / "weights" / "smib.safetensors"
_BOX_ORDER = ("t", "m", "d", "P", "delta0", "omega0")
VALIDATION_TIMES_S = np.linspace(0.0, smib.T_MAX_S, 201)

# Data trajectories that pass within this many rad of the saddle π − arcsin(P/B) are left out
# (about 0.2 % of them): there a trajectory depends sharply on every input, no network of this
# size follows it (the card's error-by-margin table), and its misfit, hundreds of times the
# others', would steer L-BFGS away from the rest of the box. The physics residual still covers it.
DATA_MIN_SADDLE_MARGIN_RAD = 0.6

# The configuration of the shipped weights (physics residual + reference trajectories).
SMIB_CONFIG = TrainConfig(
    hidden=(128, 128, 128, 128),
    adam_steps=20_000,
    lbfgs_steps=18_500,
    n_trajectories=3_000,
    lbfgs_collocation=8_192,
    lbfgs_data=16_384,
    checkpoint_every=250,
)
# The physics-only comparison run recorded in the card (no solver data in the loss).
PHYSICS_ONLY_CONFIG = TrainConfig(
    hidden=(128, 128, 128, 128), adam_steps=5_000, lbfgs_steps=300, data_weight=0.0, lbfgs_collocation=16_384
)


def predict(xp, weights: dict, n_layers: int, t, m, d, P, B, delta0, omega0) -> dict:
    """Observables at physical inputs (any broadcastable shapes), in the array namespace ``xp``.

    ``t`` must be an array of ``xp``; the other inputs may be Python numbers or arrays.
    """
    # Arrays of t's dtype pass through untouched: torch.asarray on a tensor that requires grad
    # warns (and would have to choose whether the copy keeps the graph).
    m, d, P, B, delta0, omega0 = (
        v if getattr(v, "dtype", None) == t.dtype else xp.asarray(v, dtype=t.dtype)
        for v in (m, d, P, B, delta0, omega0)
    )
    s, zeta, p, d0, w0, rate = smib.dimensionless(xp, t, m, d, P, B, delta0, omega0)
    out = mlp_apply(xp, weights, smib.encode(xp, s, zeta, p, d0, w0), n_layers)
    delta, w = smib.hard_ic(xp, s, d0, w0, out)
    return smib.to_observables(delta, w, rate)


def _uniform_box(n: int, gen: torch.Generator) -> torch.Tensor:
    lo = torch.tensor([smib.TRAINED_BOX[k][0] for k in _BOX_ORDER])
    hi = torch.tensor([smib.TRAINED_BOX[k][1] for k in _BOX_ORDER])
    return lo + (hi - lo) * torch.rand(n, len(_BOX_ORDER), generator=gen)


@dataclass
class SmibProblem:
    """Residuals of the dimensionless swing equation, and reference trajectories for the data term."""

    n_trajectories: int = 0
    times_per_trajectory: int = 64
    seed: int = 0
    n_left_out: int = field(init=False, default=0)  # data trajectories slipping or near the saddle
    data_x: torch.Tensor = field(init=False, repr=False)
    data_y: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        if self.n_trajectories > 0:
            self.data_x, self.data_y = self._reference_data()

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return _uniform_box(n, gen)

    def _reference_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed + 1000)
        params = _uniform_box(self.n_trajectories, gen)[:, 1:].double().numpy()
        rng = np.random.default_rng(self.seed + 1000)
        xs, ys = [], []
        for m, d, P, delta0, omega0 in params:
            t = np.sort(rng.uniform(0.0, smib.T_MAX_S, self.times_per_trajectory))
            y = smib_reference.solve(t, m, d, P, smib.B_TRAIN, delta0, omega0)
            margin = smib.saddle_margin(y[smib.OBSERVABLES[0]], P, smib.B_TRAIN)
            if margin < DATA_MIN_SADDLE_MARGIN_RAD:  # slipping (margin < 0) or close to it
                self.n_left_out += 1
                continue
            rate = np.sqrt(smib.B_TRAIN / m)
            cols = np.broadcast_arrays(t, m, d, P, delta0, omega0)
            xs.append(np.stack(cols, -1))
            ys.append(np.stack([y[smib.OBSERVABLES[0]], y[smib.OBSERVABLES[1]] / rate], -1))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    def data_batch(self, n, gen, device, dtype=torch.float32):
        idx = torch.randint(0, len(self.data_x), (n,), generator=gen)
        return self.data_x[idx].to(device, dtype), self.data_y[idx].to(device, dtype)

    @staticmethod
    def _state(model, x, s_requires_grad: bool):
        t, m, d, P, delta0, omega0 = x.unbind(-1)
        s, zeta, p, d0, w0, _ = smib.dimensionless(torch, t, m, d, P, smib.B_TRAIN, delta0, omega0)
        if s_requires_grad:
            s = s.detach().requires_grad_(True)
        out = model(smib.encode(torch, s, zeta, p, d0, w0))
        delta, w = smib.hard_ic(torch, s, d0, w0, out)
        return s, zeta, p, delta, w

    def physics_loss(self, model, x):
        """Mean squared residual of δ_s = w and w_s + ζ·w + sin δ = p."""
        s, zeta, p, delta, w = self._state(model, x, True)
        delta_s, w_s = (torch.autograd.grad(v.sum(), s, create_graph=True)[0] for v in (delta, w))
        r1 = delta_s - w
        r2 = w_s + zeta * w + torch.sin(delta) - p
        return (r1**2).mean() + (r2**2).mean()

    def data_loss(self, model, batch):
        x, y = batch
        _, _, _, delta, w = self._state(model, x, False)
        return ((delta - y[:, 0]) ** 2).mean() + ((w - y[:, 1]) ** 2).mean()


def _weights_np(model: MLP) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}


def validation_residuals(weights: dict, n_layers: int, n_points: int = 128, seed: int = 12345) -> dict:
    """Residual curves (surrogate − ``solve_ivp``) on a held-out Sobol design at B = 0.2.

    Returns ``{"times_s": (T,), "m": (K,), ..., "residual: <observable>": (K, T)}`` over the K
    design points that do not slip a pole (``"excluded"`` lists those that do). The design
    covers the trained box (t is the 201-point grid on [0, 20] s); its seed differs from every
    training seed.
    """
    box = {k: smib.TRAINED_BOX[k] for k in _BOX_ORDER[1:]}
    design = sobol_design(box, n_points, seed)
    t = VALIDATION_TIMES_S
    w = {k: torch.from_numpy(np.asarray(v, float)) for k, v in weights.items()}
    kept, excluded, curves = [], [], {name: [] for name in smib.OBSERVABLES}
    for i in range(n_points):
        row = {k: float(design[k][i]) for k in box}
        ref = smib_reference.solve(t, B=smib.B_TRAIN, **row)
        if smib.slips(ref[smib.OBSERVABLES[0]], row["P"], smib.B_TRAIN):
            excluded.append(row)
            continue
        with torch.no_grad():
            pred = predict(torch, w, n_layers, torch.from_numpy(t), B=smib.B_TRAIN, **row)
        kept.append(row)
        for name in smib.OBSERVABLES:
            curves[name].append(pred[name].numpy() - ref[name])
    arrays = {"times_s": t, **{k: np.array([r[k] for r in kept]) for k in box}}
    arrays.update({f"residual: {name}": np.array(v) for name, v in curves.items()})
    return {"arrays": arrays, "excluded": excluded}


# Bins of the saddle margin [rad] over which the surrogate's error is reported separately.
SADDLE_MARGIN_BINS_RAD = (0.0, 0.3, 0.6, 0.9, 1.2, float("inf"))


def error_by_saddle_margin(weights: dict, n_layers: int, n: int = 4_000, seed: int = 2024) -> dict:
    """Angle RMSE per trajectory on ``n`` uniform draws from the trained box, by saddle margin.

    The Sobol design of ``validate_smib`` puts few points where a trajectory nearly slips a pole
    (high m, low d, P near 0.15): there the solution depends sharply on every input and the
    surrogate is measurably worse. This table is what ``SmibSurrogate.trust_flags`` reads.
    """
    rng = np.random.default_rng(seed)
    box = {k: smib.TRAINED_BOX[k] for k in _BOX_ORDER[1:]}
    draws = {k: rng.uniform(lo, hi, n) for k, (lo, hi) in box.items()}
    t = VALIDATION_TIMES_S
    # Chunks keep the stacked solve's shrunken tolerance (rtol / sqrt(2 n)) well above round-off.
    ref = np.concatenate(
        [
            smib_reference.solve_many(t, B=smib.B_TRAIN, **{k: v[i : i + 250] for k, v in draws.items()})[
                smib.OBSERVABLES[0]
            ]
            for i in range(0, n, 250)
        ]
    )
    cols = {k: v[:, None] for k, v in draws.items()}
    pred = predict(np, weights, n_layers, t[None, :], B=smib.B_TRAIN, **cols)[smib.OBSERVABLES[0]]
    margin = smib.saddle_margin(ref, draws["P"], smib.B_TRAIN)
    slipped = np.array([smib.slips(a, p, smib.B_TRAIN) for a, p in zip(ref, draws["P"])])
    rmse = np.sqrt(np.mean((pred - ref) ** 2, axis=1))
    rows = []
    for lo, hi in itertools.pairwise(SADDLE_MARGIN_BINS_RAD):
        inside = (margin >= lo) & (margin < hi) & ~slipped
        stats = rmse_stats(rmse[inside]) if inside.any() else {}
        upper = hi if np.isfinite(hi) else None  # JSON has no infinity
        rows.append({"margin_rad": [lo, upper], "trajectories": int(inside.sum()), **stats})
    return {
        "design": f"{n} uniform draws (seed {seed}) over m, d, P, delta0, omega0 at B = {smib.B_TRAIN}; "
        "201 times on [0, 20] s; margin = rad between the largest angle and pi - arcsin(P/B)",
        "observable": smib.OBSERVABLES[0],
        "excluded_pole_slipping": int(slipped.sum()),
        "bins": rows,
    }


def validate_smib(weights: dict, n_layers: int, n_points: int = 128, seed: int = 12345) -> dict:
    """Per-trajectory RMSE of both observables against ``solve_ivp`` on the held-out design."""
    held_out = validation_residuals(weights, n_layers, n_points, seed)
    arrays = held_out["arrays"]
    rmse = {name: np.sqrt(np.mean(arrays[f"residual: {name}"] ** 2, axis=1)) for name in smib.OBSERVABLES}
    return {
        "design": f"{n_points} scrambled Sobol points (seed {seed}) over m, d, P, delta0, omega0 "
        f"at B = {smib.B_TRAIN}; 201 times on [0, 20] s; reference solve_ivp DOP853 "
        f"rtol={smib_reference.RTOL}, atol={smib_reference.ATOL}",
        "rmse": {name: rmse_stats(v) for name, v in rmse.items()},
        "excluded_pole_slipping": held_out["excluded"],
        "per_point_rmse": {name: [float(x) for x in v] for name, v in rmse.items()},
        "arrays": arrays,
    }


def card_validation(weights: dict, n_layers: int, n_points: int = 128) -> dict:
    """What the card records: ``validate_smib`` on the Sobol design, and the error by saddle
    margin on 160 uniform draws per design point (20,480 for the card's 128)."""
    validation = validate_smib(weights, n_layers, n_points)
    validation["by_saddle_margin"] = error_by_saddle_margin(weights, n_layers, n=160 * n_points)
    return validation


def train_smib(
    config: TrainConfig = SMIB_CONFIG,
    out: Path = WEIGHTS,
    checkpoint: Path | None = None,
    progress: bool = True,
    validation_points: int = 128,
) -> dict:
    """Train, validate and write the weights with their card; returns the card.

    With a ``checkpoint`` a rerun resumes where an interrupted run stopped.
    """
    n_traj = config.n_trajectories if config.data_weight > 0 else 0
    problem = SmibProblem(n_trajectories=n_traj, seed=config.seed)
    model = MLP(5, 2, config.hidden, seed=config.seed)
    record = train(problem, model, config, checkpoint=checkpoint, progress=progress)
    model.double()
    weights = _weights_np(model)
    validation = card_validation(weights, len(model.layers), validation_points)
    arrays = validation.pop("arrays")
    save_weights(out, weights, _card(config, record, problem, validation, len(model.layers)))
    return save_residuals(out, arrays)  # the correlated surrogate-error model reads these


def _card(config: TrainConfig, record: dict, problem: SmibProblem, validation: dict, n_layers: int) -> dict:

    device = record["device"]
    physics_only = config.data_weight == 0
    return {
        "name": "power.smib",
        "system": "m·δ'' + d·δ' + B·sin(δ) = P, δ(0)=delta0, δ'(0)=omega0",
        "architecture": {
            "type": "tanh MLP",
            "inputs": ["s", "log zeta", "p", "delta0", "w0"],
            "hidden": list(config.hidden),
            "outputs": ["N_delta", "N_w"],
            "n_layers": n_layers,
            "hard_initial_conditions": "δ = δ0 + w0·(1−e^−s) + (1−e^−s)²·N1 ; w = w0 + (1−e^−s)·N2",
            "dtype": "float64",
        },
        "normalisation": "s = t·sqrt(B/m), zeta = d/sqrt(m·B), p = P/B, w0 = omega0·sqrt(m/B); "
        "each mapped linearly to [-1, 1] over the trained box (zeta in log)",
        "domain": {k: list(v) for k, v in smib.TRAINED_BOX.items()},
        "B_trained": smib.B_TRAIN,
        "B_rescaling": "a study at B uses m·B_trained/B, d·B_trained/B, P·B_trained/B; exact",
        "parameters": list(smib.PARAMETERS),
        "conditions": list(smib.CONDITIONS),
        "observables": list(smib.OBSERVABLES),
        "units": smib.UNITS,
        "training": {
            "config": config.to_dict(),
            "loss": "physics_weight·(mean r1² + mean r2²) + data_weight·(mean Δδ² + mean Δw²)",
            "mix": (
                "physics residual only"
                if physics_only
                else "physics residual at resampled collocation points + solve_ivp trajectories × 64 "
                "random times each (data term)"
            ),
            "data_trajectories_left_out": problem.n_left_out,
            "data_left_out_rule": f"slipping, or within {DATA_MIN_SADDLE_MARGIN_RAD} rad of the saddle "
            "at the sampled times",
            "wall_time_s": round(record["wall_time_s"], 1),
            "final_loss": next((h for h in reversed(record["history"]) if "loss" in h), None),
            "device": device,
            "hardware": hardware_description(device),
            "reproduce": "bayespinn train power.smib" + (" --physics-only" if physics_only else ""),
        },
        "versions": training_versions(),
        "validation": {k: v for k, v in validation.items() if k != "per_point_rmse"},
    }
