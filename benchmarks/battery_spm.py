"""Speed of the ``battery.spm`` surrogate against PyBaMM's SPM, as ratios from one run.

On a 1C discharge of Chen2020 sampled every 10 s up to PyBaMM's 2.5 V cut-off:

1. one voltage curve: the surrogate (JAX, jitted) vs PyBaMM re-solving its built model
   (``spm_reference.solve``: IDAKLU, ``PARTICLE_VOLUMES`` packed volumes per particle), and vs
   PyBaMM returning the voltage only (``output_variables``) or on its default mesh (20 volumes);
2. value and gradient of a Gaussian log-likelihood w.r.t. both scales: ``jax.value_and_grad`` vs
   PyBaMM's forward sensitivities (IDAKLU, full state, and with ``output_variables``);
3. a batch of parameter sets: ``jax.vmap`` vs PyBaMM's list-of-inputs solve on 2 threads;
4. the surrogate's voltage error on the curve and over the batch, to read the speed with.

One JSON object goes to stdout, progress to stderr. Times are medians of repeats taken in this
run; only the ratios (PyBaMM ÷ surrogate) are meant to travel between machines.

    python benchmarks/battery_spm.py [--quick] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

# Run from a checkout without installing: the repository root must win on the path.
_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "surrogates").is_dir():
    sys.path.insert(0, str(_ROOT))
os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpyro

numpyro.enable_x64()  # before JAX starts its backend: float64 everywhere, as PyBaMM

import jax
import jax.numpy as jnp
import numpy as np
from bench_timing import per_call_s, processor, run, sig

from surrogates import registry
from surrogates.battery import chen2020, spm_reference

V = "Voltage [V]"
SCALES = ("positive_diffusivity_scale", "negative_j0_scale")
TRUTH = {"positive_diffusivity_scale": 1.0, "negative_j0_scale": 1.0, "c_rate": 1.0}
THETA = (2.0, 0.5)  # where the gradient is taken: off the truth, where it is not ~0
SIGMA_V = 0.005  # likelihood noise [V]
FD_STEP_REL = 1e-4  # central differences checking the PyBaMM gradient: O(h²) against rtol 1e-9


def _log(msg: str) -> None:
    print(f"[bench battery_spm] {msg}", file=sys.stderr, flush=True)


def _compare(sur_s: float, pybamm_s: float, **more) -> dict:
    return {
        "surrogate_s": sig(sur_s),
        "pybamm_s": sig(pybamm_s),
        "ratio": sig(pybamm_s / sur_s, 3),
        **more,
    }


# --- PyBaMM simulations built here (spm_reference's own have no sensitivities) ---------------


def _pybamm_sim(fine: bool = True, output_variables: tuple[str, ...] = ()):
    """SPM without events (any time, like ``spm_reference.simulation(False)``), built once.

    ``fine`` copies ``spm_reference.simulation``'s mesh; otherwise PyBaMM's default mesh."""
    import pybamm

    model = pybamm.lithium_ion.SPM()
    model.events = []
    mesh = {}
    if fine:
        submeshes = dict(model.default_submesh_types)
        packed = pybamm.MeshGenerator(
            pybamm.Exponential1DSubMesh, submesh_params={"side": "right", "stretch": 3}
        )
        submeshes["negative particle"] = submeshes["positive particle"] = packed
        n_r = spm_reference.PARTICLE_VOLUMES
        mesh = {"var_pts": {"x_n": 5, "x_s": 5, "x_p": 5, "r_n": n_r, "r_p": n_r}, "submesh_types": submeshes}
    solver = pybamm.IDAKLUSolver(**spm_reference.SOLVER_TOLERANCES, output_variables=list(output_variables))
    sim = pybamm.Simulation(model, parameter_values=spm_reference.parameter_values(), solver=solver, **mesh)
    sim.build()
    return sim


def _pybamm_solve(sim, t: np.ndarray, values: dict, sens: bool = False):
    """Voltage at ``t`` and, with ``sens``, dV/d(scales) as (len(t), 2) from IDAKLU's forward
    sensitivities (PyBaMM 26: ``calculate_sensitivities=[names]`` in ``solve``)."""
    sol = sim.solve(
        [0.0, float(t[-1])],
        inputs=values,
        t_interp=t,
        calculate_sensitivities=list(SCALES) if sens else False,
    )
    assert len(sol.t) == len(t), "IDAKLU returns t_interp (t starts at 0 and ends at t_eval's end)"
    var = sol[V]
    if not sens:
        return np.asarray(var.data)
    s = var.sensitivities
    return np.asarray(var.data), np.column_stack([np.ravel(s[k]) for k in SCALES])


# --- sections -------------------------------------------------------------------------------


def forward_one(fwd, t, timing) -> dict:
    sur = jax.jit(fwd)
    args = (jnp.asarray(1.0), jnp.asarray(1.0))
    first = {  # PyBaMM's first call builds and compiles spm_reference's cached simulation
        "surrogate": run(lambda: sur(*args), 1),
        "pybamm": run(lambda: spm_reference.solve(t, **TRUTH), 1),
    }
    sims = {"output_variables": _pybamm_sim(output_variables=(V,)), "default_mesh": _pybamm_sim(fine=False)}
    variants = {"spm_reference": lambda: spm_reference.solve(t, **TRUTH)[V]}
    variants |= {k: lambda sim=sim: _pybamm_solve(sim, t, TRUTH) for k, sim in sims.items()}
    sur_s = per_call_s(lambda: sur(*args), **timing)
    s = {k: per_call_s(f, **timing) for k, f in variants.items()}
    coarse_err = np.abs(variants["default_mesh"]() - variants["spm_reference"]())
    return _compare(
        sur_s,
        s["spm_reference"],
        pybamm_s_is="spm_reference.solve (full state returned, voltage interpolated at t)",
        pybamm_by_variant_s={k: sig(v) for k, v in s.items()},
        ratio_by_variant={k: sig(v / sur_s, 3) for k, v in s.items()},
        default_mesh_max_abs_mV_vs_fine=sig(1e3 * coarse_err.max(), 3),
        first_call_s={k: sig(v) for k, v in first.items()},
        note="first_call_s: surrogate tracing + XLA compilation; PyBaMM build + compile + first "
        "solve. The timed calls exclude both",
    )


def surrogate_value_and_grad(fwd, y):
    """The log-likelihood of ``y`` under ``fwd(pd, j0)`` with its gradient w.r.t. both scales, jitted."""

    def loglik(pd, j0):
        return -0.5 * jnp.sum((fwd(pd, j0) - y) ** 2) / SIGMA_V**2

    return jax.jit(jax.value_and_grad(loglik, argnums=(0, 1)))


def grad_one(
    fwd, t, y, timing, sims=None, pybamm_s_is="the faster variant (full state or output_variables)"
) -> dict:
    """``sims``: name -> built PyBaMM simulation (anything with ``solve``) to time; by default the
    SPM's, full state and voltage only. PyBaMM's central differences go through the first."""
    sur = surrogate_value_and_grad(fwd, y)
    args, theta = tuple(map(jnp.asarray, THETA)), {**TRUTH, **dict(zip(SCALES, THETA))}
    jax.block_until_ready(sur(*args))
    if sims is None:
        sims = {"full_state": _pybamm_sim(), "output_variables": _pybamm_sim(output_variables=(V,))}

    def pybamm(sim):
        v, dv = _pybamm_solve(sim, t, theta, sens=True)
        r = v - y
        return -0.5 * np.sum(r**2) / SIGMA_V**2, -(r @ dv) / SIGMA_V**2

    for sim in sims.values():  # the first solve with sensitivities sets IDAKLU up again
        pybamm(sim)
    s = {k: per_call_s(lambda sim=sim: pybamm(sim), **timing) for k, sim in sims.items()}
    grads = {
        "surrogate": [float(g) for g in sur(*args)[1]],
        **{k: list(pybamm(v)[1]) for k, v in sims.items()},
    }
    grads["pybamm_central_differences"] = _fd_grad(next(iter(sims.values())), t, y, theta)
    return _compare(
        per_call_s(lambda: sur(*args), **timing),
        min(s.values()),
        pybamm_by_variant_s={k: sig(v) for k, v in s.items()},
        pybamm_s_is=pybamm_s_is,
        loglik=f"-Σ (V(θ) − V_ref)² / (2·{SIGMA_V}²) over the curve's times; value and gradient "
        f"w.r.t. (positive_diffusivity_scale, negative_j0_scale) at {THETA}",
        gradient={k: [sig(x, 6) for x in v] for k, v in grads.items()},
    )


def _fd_grad(sim, t, y, theta) -> list[float]:
    """Central differences of the log-likelihood through PyBaMM (a check, not timed)."""

    def ll(th):
        return -0.5 * np.sum((_pybamm_solve(sim, t, th) - y) ** 2) / SIGMA_V**2

    step = {k: FD_STEP_REL * theta[k] for k in SCALES}
    return [
        (ll({**theta, k: theta[k] + h}) - ll({**theta, k: theta[k] - h})) / (2 * h) for k, h in step.items()
    ]


def batch(fwd, t, n: int, seed: int, timing) -> dict:
    logs = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 2))
    pd, j0 = 10.0 ** logs[:, 0], 10.0 ** logs[:, 1]
    rows = [{**TRUTH, SCALES[0]: float(a), SCALES[1]: float(b)} for a, b in zip(pd, j0)]
    sur = jax.jit(jax.vmap(fwd))
    args = (jnp.asarray(pd), jnp.asarray(j0))
    jax.block_until_ready(sur(*args))
    spm_reference.solve_many(t, rows[:2], threads=2)  # builds the 2-thread simulation
    sur_s = per_call_s(lambda: sur(*args), **timing)
    pybamm_s = per_call_s(lambda: spm_reference.solve_many(t, rows, threads=2), **{**timing, "repeats": 3})
    ref = spm_reference.solve_many(t, rows, threads=2)
    # Error only where PyBaMM is above its cut-off: past it the voltage plunges, data end there.
    err = np.where(ref >= chen2020.CUTOFF_V, np.abs(np.asarray(sur(*args)) - ref), 0.0).max(axis=1)
    return _compare(
        sur_s,
        pybamm_s,
        n=n,
        params=f"log10 of both scales ~ U(-1, 1), numpy default_rng({seed}); c_rate 1",
        pybamm="spm_reference.solve_many: one list-of-inputs IDAKLU solve, 2 threads",
        max_abs_mV_above_cutoff={k: sig(1e3 * f(err), 3) for k, f in _STATS.items()},
        worst={k: sig(v, 4) for k, v in rows[int(err.argmax())].items()},
    )


_STATS = {"median": np.median, "p95": lambda e: np.percentile(e, 95), "max": np.max}


def accuracy(fwd, t, y, reference=spm_reference) -> dict:
    out = {}
    for name, (pd, j0) in {"truth": (1.0, 1.0), "gradient_point": THETA}.items():
        ref = y if name == "truth" else reference.solve(t, **{**TRUTH, SCALES[0]: pd, SCALES[1]: j0})[V]
        err = np.abs(np.asarray(fwd(jnp.asarray(pd), jnp.asarray(j0))) - ref)
        out[name] = {
            "max_abs_mV": sig(1e3 * err.max(), 3),
            "rmse_mV": sig(1e3 * np.sqrt(np.mean(err**2)), 3),
        }
    return out


# --- the run --------------------------------------------------------------------------------


def machine() -> dict:
    import pybamm
    import torch

    return {
        "platform": platform.platform(),
        "processor": processor(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_start": sig(os.getloadavg()[0], 3),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "pybamm": pybamm.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: fewer repeats, batch 100")
    p.add_argument("--seed", type=int, default=0, help="batch parameters")
    args = p.parse_args(argv)
    host = machine()  # load average before we add any
    surrogate = registry.load("battery.spm")
    t, y, cutoff_s = spm_reference.window(**TRUTH)
    tj = jnp.asarray(t)

    def fwd(pd, j0):
        return surrogate.jax_forward(tj, positive_diffusivity_scale=pd, negative_j0_scale=j0, c_rate=1.0)[V]

    timing = {"repeats": 3, "min_s": 0.05} if args.quick else {"repeats": 7, "min_s": 0.2}
    n = 100 if args.quick else 1000
    report = {
        "settings": {
            "curve": f"1C discharge, {len(t)} times every 10 s on [0, {t[-1]:g}] s; PyBaMM cut-off "
            f"{cutoff_s:.1f} s",
            "pybamm": f"SPM, Chen2020, IDAKLU rtol {spm_reference.SOLVER_TOLERANCES['rtol']:g} atol "
            f"{spm_reference.SOLVER_TOLERANCES['atol']:g}, {spm_reference.PARTICLE_VOLUMES} packed volumes "
            "per particle, model built once and re-solved with input parameters",
            "weights_sha256": surrogate.card.get("sha256"),
            "surrogate_hidden": surrogate.card["architecture"].get("hidden"),
            "dtype": str(jnp.zeros(()).dtype),
            "quick": args.quick,
            "seed": args.seed,
            "timing": "median over repeats of mean seconds per call (7 repeats, 3 with --quick and "
            "for the PyBaMM batch); every function called once before timing; ratio = pybamm_s / "
            "surrogate_s",
        }
    }
    _log("one voltage curve")
    report["forward_one"] = forward_one(fwd, t, timing)
    _log("log-likelihood and its gradient")
    report["grad_one"] = grad_one(fwd, t, y, timing)
    _log(f"batch of {n}")
    report[f"batch_{n}"] = batch(fwd, t, n, args.seed, timing)
    report["accuracy"] = accuracy(fwd, t, y)  # after forward_one, whose first PyBaMM call builds
    report["machine"] = {**host, "load_average_1min_at_end": sig(os.getloadavg()[0], 3)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
