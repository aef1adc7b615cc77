"""The ``battery.p2d`` surrogate: the SPMe's physics with the rest of the DFN learned.

The DFN differs from the SPM by what happens across the cell: the electrolyte's concentration
and potential drop, and a reaction that is not uniform through each electrode, so the particles
near the separator fill first. On Chen2020 those add 13–200 mV to the SPM's voltage and bring the
cut-off up to 1 % earlier. The SPMe, which keeps the electrolyte but spreads the reaction evenly,
leaves 3–36 mV of that (RMSE at five corners of the box). The surrogate is built on the SPMe
and learns the rest from the DFN:

    x_n = x_n^SPM(t) + g·0.02·N_0,   x_p = x_p^SPM(t) + g·0.02·N_1,           g = f / sqrt(f + 0.01),
    V = E[U_p(x_p + σ_p ξ)] − E[U_n(x_n + σ_n ξ)] + ⟨η_p(x_p, c_e)⟩ − ⟨η_n(x_n, c_e)⟩
        + η_c + Δφ_e + Δφ_s + 0.1·N_2,

with f = t·c_rate/3600 the nominal discharge fraction and N = MLP(time, x^SPM, log10 scales,
c_rate). The physics under it is three physics-informed parts:

- x^SPM, the surface stoichiometries of ``battery.spm``'s particle network (trained on the
  spherical-diffusion residual alone; its weights are copied into this surrogate's file);
- c_e(t, x), the electrolyte concentration of ``electrolyte``'s network (trained on the
  electrolyte-diffusion residual alone, with the SPMe's uniform reaction; copied likewise), which
  gives Butler–Volmer its local c_e (averaged across each electrode), the concentration
  overpotential η_c and, with the electrolyte's and solid's Ohm's laws integrated under the same
  closure, the ohmic drops Δφ_e and Δφ_s;
- U, η: Chen2020's open-circuit potentials and Butler–Volmer in closed form (``chen2020``).

The cut-off cliff is the OCP's own steep edge, reached by a smooth stoichiometry, so the network
never has to draw a cliff. ``g`` keeps the initial state exact. The spreads σ (a normal spread of
the surfaces across each electrode, the DFN's uneven reaction) smooth the graphite OCP's steps.

N is fitted to PyBaMM DFN solutions (``p2d_reference``) on a Sobol design of the box, every 10 s
up to the cut-off and densely on the last 5 % before it, where the timing of the cliff is set.
The DFN's own residuals with its uneven reaction (which would need every field as a function of
time, x, r and three inputs) are not in a loss: that part enters through the solutions.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import BarycentricInterpolator

from surrogates.battery import chen2020, electrolyte, p2d_reference, pybamm_reference, spm_pinn
from surrogates.pinn.card import load_weights, save_residuals, save_weights
from surrogates.pinn.network import MLP, mlp_apply
from surrogates.pinn.trainer import TrainConfig, hardware_description, train

__all__ = ["DOMAIN", "P2D_CONFIG", "WEIGHTS", "dfn_curves", "predict", "train_p2d", "validate_p2d"]

DOMAIN = spm_pinn.DOMAIN
WEIGHTS = Path(__file__).parent / "weights" / "p2d.safetensors"
# prefixes of the SPM particle network's and the electrolyte network's tensors in this surrogate's file
PARTICLE, ELECTROLYTE = "particle.", "electrolyte."
STOICHIOMETRY_SCALE, VOLTAGE_SCALE_V = 0.02, 0.1
ELECTROLYTE_S = 120.0  # about the electrolyte's diffusion time across the cell, L²/D_e
N_INPUTS, N_OUTPUTS = 8, 5
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(5)
HERMITE = tuple(zip(_NODES.tolist(), (_WEIGHTS / _WEIGHTS.sum()).tolist(), strict=True))
LOSS_SCALE_V = 0.01  # the loss is in units of 10 mV
END_FRACTIONS = 1.0 - np.geomspace(0.05, 1e-4, 40)  # of the cut-off time: the cliff
TRAIN_SEED = 7  # the held-out design uses spm_pinn's validation seed
RECORD_NODES = 48  # where the networks run along a record (``record_nodes``)

P2D_CONFIG = TrainConfig(
    hidden=(64, 64, 64, 64),
    adam_steps=6_000,
    lr_start=3e-3,
    lr_end=1e-4,
    collocation_batch=1,
    data_batch=8_192,
    lbfgs_steps=2_000,
    lbfgs_data=32_768,
    lbfgs_resample_every=250,
    physics_weight=0.0,
    data_weight=1.0,
    n_trajectories=1_024,
    checkpoint_every=250,
)


def _split(weights: dict) -> tuple[dict, dict, dict]:
    """(the correcting network, the particle network, the electrolyte network)."""
    parts = {"": {}, PARTICLE: {}, ELECTROLYTE: {}}
    for k, v in weights.items():
        prefix = next((p for p in (PARTICLE, ELECTROLYTE) if k.startswith(p)), "")
        parts[prefix][k[len(prefix) :]] = v
    return parts[""], parts[PARTICLE], parts[ELECTROLYTE]


def discharge_fraction(t, c_rate):
    """f = t·c_rate / 3600 s, the nominal share of the capacity discharged."""
    return t * c_rate / 3600.0


def encode(xp, t, x_n, x_p, positive_diffusivity_scale, negative_j0_scale, c_rate):
    """The network's inputs, each in about [-1, 1], and f, the nominal discharge fraction; arrays
    of ``xp``, any broadcastable shapes. Besides time (linear, as sqrt(f) for the particles' and
    as e^(−t/120 s) for the electrolyte's start-up transient), the SPM's surface stoichiometries:
    the DFN smooths the graphite OCP's steps where x_n crosses them, a feature fixed in x_n,
    not in time."""
    f = discharge_fraction(t, c_rate)
    cols = [
        f * (4.0 / 3.0) - 1.0,
        2.0 * xp.sqrt(f / 1.5 + 1e-12) - 1.0,
        2.0 * xp.exp(-t / ELECTROLYTE_S) - 1.0,
        2.0 * x_n - 1.0,
        2.0 * x_p - 1.0,
        xp.log10(positive_diffusivity_scale),
        xp.log10(negative_j0_scale),
        (c_rate - 1.25) / 0.75,
    ]
    base = 0.0 * sum(cols)  # the broadcast shape, the same in NumPy, torch and JAX
    return xp.stack([c + base for c in cols], -1), f


def _spread_ocp(xp, ocp_fit, x, spread):
    """E[U(x + spread·ξ)], ξ ~ N(0, 1), by 5-point Gauss–Hermite: the OCP seen by particles whose
    surface stoichiometries spread across the electrode. Only the OCP's fitted curve is spread;
    PyBaMM's barrier at empty and full stays at x (a node past it would weigh thousands of volts).
    The nodes are stacked on a last axis, so the OCP is one expression, not five (it halves the
    gradient's XLA compilation)."""
    u = ocp_fit(xp, xp.stack([x + spread * node for node, _ in HERMITE], -1))
    return chen2020.u_asymptotes(xp, x) + sum(w * u[..., i] for i, (_, w) in enumerate(HERMITE))


def _mean_overpotential(xp, domain, current_a, sto, c_e, scale=1.0):
    """Butler–Volmer averaged across an electrode with the local c_e at its nodes (last axis)."""

    def col(v):  # v broadcast to sto's shape, with an axis for the nodes
        return (v + 0.0 * sto)[..., None]

    eta = chen2020.overpotential(xp, domain, col(current_a), sto[..., None], col(scale), c_e)
    return electrolyte.region_mean(xp, eta)


def corrected_voltage(xp, out, f, x_n, x_p, current_a, negative_j0_scale, c_e_n, c_e_p, share):
    """The voltage from the network's outputs ``out`` (..., 5), the SPM's surface
    stoichiometries (each surface shifted and spread) and the electrolyte: c_e at each
    electrode's nodes and its and the solid's voltage ``share`` (``electrolyte.state``)."""
    g = f / xp.sqrt(f + 0.01)
    x_n = x_n + g * STOICHIOMETRY_SCALE * out[..., 0]
    x_p = x_p + g * STOICHIOMETRY_SCALE * out[..., 1]
    # The network sets the spread's variance, not the spread: the OCP's response to a spread is
    # quadratic in it (σ²·U''/2), so a gradient in σ would vanish where σ starts small.
    h = f / (f + 0.01)
    spread_n = STOICHIOMETRY_SCALE * xp.sqrt(h * _softplus(xp, out[..., 3]) + 1e-12)
    spread_p = STOICHIOMETRY_SCALE * xp.sqrt(h * _softplus(xp, out[..., 4]) + 1e-12)
    return (
        _spread_ocp(xp, chen2020.ocp_positive_fit, x_p, spread_p)
        - _spread_ocp(xp, chen2020.ocp_negative_fit, x_n, spread_n)
        + _mean_overpotential(xp, "positive", current_a, x_p, c_e_p)
        - _mean_overpotential(xp, "negative", current_a, x_n, c_e_n, negative_j0_scale)
        + share
        + VOLTAGE_SCALE_V * out[..., 2]
    )


def _softplus(xp, z):
    return xp.log1p(xp.exp(-xp.abs(z))) + xp.maximum(z, 0.0 * z)


def _networks(xp, net, particle, n_layers, t, positive_diffusivity_scale, negative_j0_scale, c_rate):
    """The networks' fields at times ``t``: (..., 7), the SPM's x_n and x_p and the five outputs."""
    x_n, x_p = spm_pinn.surface_stoichiometries(
        xp, particle, len(particle) // 2, t, positive_diffusivity_scale, c_rate
    )
    z, _ = encode(xp, t, x_n, x_p, positive_diffusivity_scale, negative_j0_scale, c_rate)
    out = mlp_apply(xp, net, z, n_layers)
    return xp.concatenate([(x + 0.0 * out[..., 0])[..., None] for x in (x_n, x_p)] + [out], -1)


def record_nodes(t, *inputs) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the networks run along a record: (RECORD_NODES Chebyshev points in √t spanning
    ``t``, the (T, RECORD_NODES) barycentric matrix from them to ``t``) when ``t`` is known before
    tracing, varies along its last axis only and is longer than twice the nodes, and every input
    is constant along it; None otherwise, and the networks run at every time.

    The networks' fields are smooth in √t (the particles start as √t, the electrolyte's transient
    is e^(−t/120 s)) and the cut-off cliff is the OCP's, evaluated at every time afterwards; so
    48 nodes move a voltage by under 2 µV up to the cut-off, and halve a likelihood's cost."""
    try:
        times = np.asarray(t, dtype=float)  # a JAX tracer or a torch tensor with a graph refuses
    except (TypeError, RuntimeError, ValueError):
        return None
    along_t = all(np.ndim(v) == 0 or tuple(np.shape(v))[-1:] == (1,) for v in inputs)
    if times.ndim == 0 or times.size != times.shape[-1] or times.size <= 2 * RECORD_NODES or not along_t:
        return None
    s = np.sqrt(np.clip(times.reshape(-1), 0.0, None))
    if not s.max() > s.min():
        return None
    return _chebyshev_in_root_t(s.tobytes(), times.shape)


@functools.lru_cache(maxsize=16)
def _chebyshev_in_root_t(root_t: bytes, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``record_nodes``'s answer from √t, built once per record (0.3 ms, as long as a likelihood)."""
    s = np.frombuffer(root_t)
    nodes = s.min() + (s.max() - s.min()) * (np.polynomial.chebyshev.chebpts2(RECORD_NODES) + 1.0) / 2.0
    matrix = BarycentricInterpolator(nodes, np.eye(RECORD_NODES))(s)
    return (nodes**2).reshape(shape[:-1] + (RECORD_NODES,)), matrix


def network_fields(xp, weights: dict, n_layers: int, t, *inputs):
    """``_networks``'s fields at times ``t`` (inputs of t's dtype, as ``predict`` passes them),
    run at ``record_nodes`` only and interpolated along a record: all of ``predict`` that is not
    closed-form physics (``benchmarks/battery_p2d.py`` times it alone: ``networks_only``)."""
    net, particle, _ = _split(weights)
    record = record_nodes(t, *inputs)
    if record is None:
        return _networks(xp, net, particle, n_layers, t, *inputs)
    nodes, matrix = (xp.asarray(a, dtype=t.dtype) for a in record)
    return matrix @ _networks(xp, net, particle, n_layers, nodes, *inputs)


def predict(
    xp, weights: dict, n_layers: int, t, positive_diffusivity_scale, negative_j0_scale, c_rate
) -> dict:
    """``Voltage [V]`` at times ``t`` [s] (an array of ``xp``) and any broadcastable inputs;
    ``weights`` holds all three networks (see ``_split``). Along a record the networks run at
    ``record_nodes`` only."""
    # Arrays of t's dtype pass through untouched (see smib_pinn.predict).
    positive_diffusivity_scale, negative_j0_scale, c_rate = (
        v if getattr(v, "dtype", None) == t.dtype else xp.asarray(v, dtype=t.dtype)
        for v in (positive_diffusivity_scale, negative_j0_scale, c_rate)
    )
    fields = network_fields(xp, weights, n_layers, t, positive_diffusivity_scale, negative_j0_scale, c_rate)
    f = discharge_fraction(t, c_rate)
    current = chen2020.CAPACITY_AH * c_rate
    c_e = electrolyte.state_once(xp, _split(weights)[2], t, c_rate)
    x_n, x_p, out = fields[..., 0], fields[..., 1], fields[..., 2:]
    return {"Voltage [V]": corrected_voltage(xp, out, f, x_n, x_p, current, negative_j0_scale, *c_e)}


def dfn_curve(values: dict, dt_s: float = 10.0) -> tuple[np.ndarray, np.ndarray, float]:
    """PyBaMM's DFN up to its cut-off: (times every ``dt_s`` and densely on the last 5 %, the
    voltage there, the cut-off time [s])."""
    _, _, t_cut = p2d_reference.window(dt_s=dt_s, **values)
    times = np.union1d(np.arange(0.0, t_cut, dt_s), END_FRACTIONS * t_cut)
    sol = p2d_reference.simulation(True).solve(
        [0.0, t_cut], inputs={k: float(values[k]) for k in p2d_reference.INPUTS}, t_interp=times
    )
    return times, np.asarray(sol["Voltage [V]"](times)), t_cut


def dfn_curves(
    n_points: int, seed: int = TRAIN_SEED, cache: Path | None = None, progress: bool = True
) -> dict:
    """Training data: ``dfn_curve`` at ``n_points`` Sobol points, as flat arrays (cached)."""
    from tqdm.auto import tqdm

    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bayespinn"
    path = cache / f"dfn_curves_{n_points}_{seed}_{p2d_reference.PARTICLE_VOLUMES}.npz"
    if path.exists():
        return dict(np.load(path))
    rows = []
    for values in tqdm(
        spm_pinn.validation_design(n_points, seed), desc="PyBaMM DFN", disable=not progress, mininterval=2.0
    ):
        t, v, _ = dfn_curve(values)
        rows.append({"t": t, "voltage": v, **{k: np.full(len(t), values[k]) for k in DOMAIN}})
    data = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)  # an interrupted run leaves no half-written cache
    return data


@dataclass
class DfnFit:
    """The trainer's problem: voltage error against DFN solutions (no collocation residual).
    The SPM's surface stoichiometries and the electrolyte do not depend on what is trained, so
    they are computed once."""

    data: dict
    particle: dict
    cell: dict  # the electrolyte network
    columns: dict = field(init=False)

    def __post_init__(self):
        d = self.data
        x_n, x_p = spm_pinn.surface_stoichiometries(
            np, self.particle, len(self.particle) // 2, d["t"], d["positive_diffusivity_scale"], d["c_rate"]
        )
        z, f = encode(
            np, d["t"], x_n, x_p, d["positive_diffusivity_scale"], d["negative_j0_scale"], d["c_rate"]
        )
        c_e_n, c_e_p, share = electrolyte.state(np, self.cell, d["t"], d["c_rate"])
        self.columns = {
            "z": torch.from_numpy(z),
            "f": torch.from_numpy(f),
            "x_n": torch.from_numpy(x_n),
            "x_p": torch.from_numpy(x_p),
            "current": torch.from_numpy(chen2020.CAPACITY_AH * d["c_rate"]),
            "j0": torch.from_numpy(d["negative_j0_scale"]),
            "voltage": torch.from_numpy(d["voltage"]),
            "c_e_n": torch.from_numpy(c_e_n),
            "c_e_p": torch.from_numpy(c_e_p),
            "share": torch.from_numpy(share),
        }
        # Each curve counts as much as any other (the bar is on each curve's RMSE): a 0.5C curve
        # has four times the samples of a 2C one.
        start = np.flatnonzero(d["t"] == 0.0)
        lengths = np.diff(np.r_[start, len(d["t"])])
        self.probability = torch.from_numpy(np.repeat(1.0 / lengths, lengths))

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.zeros(0)

    def physics_loss(self, model, x):  # data only (see the module's docstring)
        raise NotImplementedError

    def data_batch(self, n: int, gen: torch.Generator, device, dtype=torch.float32) -> dict:
        index = torch.multinomial(self.probability, n, replacement=True, generator=gen)
        return {k: v[index].to(device, dtype) for k, v in self.columns.items()}

    def data_loss(self, model, batch: dict) -> torch.Tensor:
        b = batch
        v = corrected_voltage(
            torch,
            model(b["z"]),
            b["f"],
            b["x_n"],
            b["x_p"],
            b["current"],
            b["j0"],
            b["c_e_n"],
            b["c_e_p"],
            b["share"],
        )
        return ((v - batch["voltage"]) / LOSS_SCALE_V).square().mean()


def validate_p2d(weights: dict, n_layers: int, n_points: int = 64, seed: int = 20_260) -> dict:
    """``spm_pinn.validate_voltage`` against PyBaMM's DFN."""

    def voltage(t, **values):
        return predict(np, weights, n_layers, np.asarray(t, float), **values)["Voltage [V]"]

    cells = ", ".join(f"{n} {k}" for k, n in p2d_reference.CELLS)
    return {
        "design": spm_pinn.design_text(n_points, seed),
        "reference": f"PyBaMM {spm_pinn._pybamm_version()} DFN, Chen2020, IDAKLU rtol="
        f"{pybamm_reference.SOLVER_TOLERANCES['rtol']}, finite volumes {cells}, "
        f"{p2d_reference.PARTICLE_VOLUMES} per particle (packed at the surface)",
        **spm_pinn.validate_voltage(voltage, p2d_reference, spm_pinn.validation_design(n_points, seed)),
    }


def train_p2d(
    config: TrainConfig = P2D_CONFIG,
    out: Path = WEIGHTS,
    checkpoint=None,
    progress=True,
    validation_points: int = 64,
) -> dict:
    """Solve the DFN on the training design, fit the network, validate it, write the card."""
    particle, particle_card = load_weights(spm_pinn.WEIGHTS)
    if not electrolyte.WEIGHTS.exists():
        electrolyte.train_electrolyte(progress=progress)
    cell, cell_card = load_weights(electrolyte.WEIGHTS)
    data = dfn_curves(config.n_trajectories, progress=progress)
    model = MLP(N_INPUTS, N_OUTPUTS, config.hidden, seed=config.seed)
    with torch.no_grad():  # start from the SPM itself: random corrections put a particle past full
        model.layers[-1].weight.zero_()
        model.layers[-1].bias.zero_()
    record = train(DfnFit(data, particle, cell), model, config, checkpoint=checkpoint, progress=progress)
    model.double()
    net = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
    weights = {
        **net,
        **{PARTICLE + k: v for k, v in particle.items()},
        **{ELECTROLYTE + k: v for k, v in cell.items()},
    }
    n_layers = len(model.layers)
    validation = validate_p2d(weights, n_layers, n_points=validation_points)
    arrays = validation.pop("arrays")
    card = _card(config, record, validation, n_layers, len(data["t"]), particle_card, cell_card)
    save_weights(out, weights, card)
    return save_residuals(out, arrays)  # the correlated surrogate-error model reads these


def _card(config, record, validation, n_layers, n_samples, particle_card, cell_card) -> dict:
    import jax

    device = record["device"]
    return {
        "name": "battery.p2d",
        "system": "PyBaMM DFN (Chen2020), constant-current discharge from the default initial state",
        "architecture": {
            "type": "tanh MLP correcting an SPMe built from two physics-informed networks",
            "inputs": [
                "f·4/3 − 1 (f = t·c_rate/3600 s)",
                "2·sqrt(f/1.5) − 1",
                f"2·exp(−t/{ELECTROLYTE_S:g} s) − 1",
                "2·x_n^SPM − 1",
                "2·x_p^SPM − 1",
                "log10 positive_diffusivity_scale",
                "log10 negative_j0_scale",
                "(c_rate − 1.25)/0.75",
            ],
            "hidden": list(config.hidden),
            "outputs": [
                "N_0 (negative surface)",
                "N_1 (positive surface)",
                "N_2 (voltage)",
                "N_3, N_4 (variance of each surface's spread)",
            ],
            "n_layers": n_layers,
            "ansatz": "x_n = x_n^SPM + g·0.02·N_0, x_p = x_p^SPM + g·0.02·N_1, g = f/sqrt(f + 0.01); "
            "σ_k = 0.02·sqrt(f/(f + 0.01)·softplus(N_3|4)); V = E[U_p(x_p + σ_p ξ)] − E[U_n(x_n + σ_n ξ)] "
            "(5-point Gauss–Hermite) + ⟨η_p(x_p, c_e)⟩ − ⟨η_n(x_n, c_e)⟩ (Butler–Volmer with the local "
            "electrolyte concentration, averaged across each electrode) + η_c + Δφ_e + Δφ_s (the SPMe's "
            "concentration overpotential and electrolyte and solid Ohm's laws) + 0.1·N_2",
            "particle_network": "battery.spm's (tensors under 'particle.'), trained on the spherical "
            f"diffusion residual alone; its card's sha256 {particle_card.get('sha256', '?')}",
            "electrolyte_network": "battery.electrolyte's (tensors under 'electrolyte.'), trained on the "
            "electrolyte diffusion residual alone with the reaction uniform through each electrode; its "
            f"card's sha256 {cell_card.get('sha256', '?')}",
            "dtype": "float64",
            "evaluation": f"along a record (over {2 * RECORD_NODES} known times, inputs constant) the "
            f"networks run at {RECORD_NODES} Chebyshev points in √t and are interpolated "
            "(barycentric); the OCPs, Butler–Volmer and the electrolyte at every time",
        },
        "domain": {k: list(v) for k, v in DOMAIN.items()},
        "time_window": "t in [0, 1.5 × 3600 s / c_rate]; fitted up to each cell's cut-off",
        "parameters": ["positive_diffusivity_scale", "negative_j0_scale"],
        "conditions": ["c_rate"],
        "observables": ["Voltage [V]"],
        "training": {
            "config": config.to_dict(),
            "loss": "mean ((V_net − V_DFN) / 10 mV)² over the training samples",
            "mix": (
                f"This network: PyBaMM DFN solutions (p2d_reference's mesh) at {config.n_trajectories} "
                f"Sobol points (seed {TRAIN_SEED}) of the box, {n_samples} samples: every 10 s up to the "
                "cut-off and 40 times on the last 5 % before it. The physics under it: the particles' "
                "diffusion residual (the particle network's loss), the electrolyte's diffusion residual "
                "with the SPMe's uniform reaction (the electrolyte network's loss), charge conservation in "
                "electrolyte and solid as their closed-form integrals under the same closure, "
                "Butler–Volmer and the OCPs in closed form. What the DFN adds to the SPMe (the reaction's "
                "spread through each electrode) is learned from the DFN's solutions only"
            ),
            "wall_time_s": round(record["wall_time_s"], 1),
            "final_loss": next((h for h in reversed(record["history"]) if "loss" in h), None),
            "device": device,
            "hardware": hardware_description(device),
            "reproduce": "bayespinn train battery.p2d",
        },
        "versions": {
            "torch": torch.__version__,
            "jax": jax.__version__,
            "pybamm": spm_pinn._pybamm_version(),
            "python": platform.python_version(),
        },
        "validation": validation,
    }
