"""Speed of the ``power.smib`` surrogate against its reference solvers, as ratios from one run.

Compares, at the demo setting (m = 0.4, d = 0.15, B = 0.2, P = 0.1, delta0 = omega0 = 0.1,
201 times on [0, 20] s):

1. one trajectory forward: surrogate (JAX, jitted) vs ``solve_ivp`` (DOP853, rtol 1e-10) vs
   diffrax (Tsit5, rtol 1e-8, jitted);
2. one trajectory forward + gradient of L = Σ δ(t)² w.r.t. (m, d): ``jax.value_and_grad`` of the
   surrogate and of diffrax vs ``solve_ivp`` with forward finite differences;
3. the same over a batch of parameter sets (``jax.vmap``; ``solve_ivp`` in a Python loop timed on
   a subset and scaled linearly);
4. NUTS wall time (compile included) and ESS per second with each JAX forward model.

One JSON object goes to stdout, progress to stderr. Times are medians of repeats taken in this
run; only the ratios are meant to travel between machines.

    python benchmarks/smib.py [--quick] [--weights PATH] [--warmup N] [--samples N] [--seed N]
                              [--chain-method auto|parallel|vectorized]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

# Run from a checkout without installing: the repository root must win over any unrelated
# ``inference``/``surrogates`` distribution on the path.
_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "surrogates").is_dir():
    sys.path.insert(0, str(_ROOT))

import numpyro

# Before JAX starts its backend: one XLA CPU device per chain, and float64 everywhere.
CHAINS = 2
numpyro.set_host_device_count(CHAINS)
numpyro.enable_x64()

import jax
import jax.numpy as jnp
import numpy as np
from bench_timing import per_call_s, processor, run, sig

from surrogates.power import smib, smib_reference

ANGLE = smib.OBSERVABLES[0]
DEMO = {"m": 0.4, "d": 0.15, "B": 0.2, "P": 0.1, "delta0": 0.1, "omega0": 0.1}
TIMES_S = np.linspace(0.0, smib.T_MAX_S, 201)
BATCH_BOX = {"m": (0.1, 1.0), "d": (0.05, 0.5)}
NOISE_SIGMA = 0.005  # rad, on the angle only
FD_STEP_REL = 1e-5  # √(solver rtol 1e-10): balances truncation against solver noise


def _log(msg: str) -> None:
    print(f"[bench smib] {msg}", file=sys.stderr, flush=True)


# --- timing ---------------------------------------------------------------------------------


def _first_call_s(fn) -> float:
    """Time of the first call: tracing and XLA compilation plus one run."""
    return run(fn, 1)


# --- the three forward models ---------------------------------------------------------------


def _conditions() -> dict[str, float]:
    return {k: DEMO[k] for k in smib.CONDITIONS}


def _surrogate_forward(surrogate):
    cond, t = _conditions(), jnp.asarray(TIMES_S)
    # One eager call first: jax_forward caches its weights as JAX arrays on first use, and a first
    # use inside jit would cache tracers (UnexpectedTracerError at the next trace).
    surrogate.jax_forward(t, m=DEMO["m"], d=DEMO["d"], **cond)
    return lambda m, d: surrogate.jax_forward(t, m=m, d=d, **cond)


def _diffrax_forward():
    cond, t = _conditions(), jnp.asarray(TIMES_S)
    return lambda m, d: smib_reference.solve_jax(
        t, m, d, cond["P"], cond["B"], cond["delta0"], cond["omega0"]
    )


def _solve_ivp(m: float, d: float) -> dict[str, np.ndarray]:
    c = _conditions()
    return smib_reference.solve(TIMES_S, m, d, c["P"], c["B"], c["delta0"], c["omega0"])


def _loss(forward):
    """L(m, d) = Σ_t δ(t)² [rad²], a scalar standing in for a log-likelihood."""
    return lambda m, d: jnp.sum(forward(m, d)[ANGLE] ** 2)


def _fd_value_and_grad(m: float, d: float):
    """Forward differences on ``solve_ivp``: one base solve plus one perturbed solve per parameter."""
    loss = lambda m_, d_: float(np.sum(_solve_ivp(m_, d_)[ANGLE] ** 2))
    f0 = loss(m, d)
    hm, hd = FD_STEP_REL * m, FD_STEP_REL * d
    return f0, ((loss(m + hm, d) - f0) / hm, (loss(m, d + hd) - f0) / hd)


# --- sections -------------------------------------------------------------------------------


def _ratios(fast_s: float, **others_s: float) -> dict[str, float]:
    return {f"speedup_vs_{name}": sig(s / fast_s, 3) for name, s in others_s.items()}


def forward_one(sur, dfx, timing) -> dict:
    m, d = jnp.asarray(DEMO["m"]), jnp.asarray(DEMO["d"])
    sur_j, dfx_j = jax.jit(sur), jax.jit(dfx)
    first = {"surrogate": _first_call_s(lambda: sur_j(m, d)), "diffrax": _first_call_s(lambda: dfx_j(m, d))}
    s = {
        "surrogate_s": per_call_s(lambda: sur_j(m, d), **timing),
        "solve_ivp_s": per_call_s(lambda: _solve_ivp(DEMO["m"], DEMO["d"]), **timing),
        "diffrax_s": per_call_s(lambda: dfx_j(m, d), **timing),
    }
    return {
        **{k: sig(v) for k, v in s.items()},
        **_ratios(s["surrogate_s"], solve_ivp=s["solve_ivp_s"], diffrax=s["diffrax_s"]),
        "first_call_s": {k: sig(v) for k, v in first.items()},
        "note": "first_call_s includes tracing and XLA compilation; the others exclude it",
    }


def grad_one(sur, dfx, timing) -> dict:
    m, d = jnp.asarray(DEMO["m"]), jnp.asarray(DEMO["d"])
    sur_g = jax.jit(jax.value_and_grad(_loss(sur), argnums=(0, 1)))
    dfx_g = jax.jit(jax.value_and_grad(_loss(dfx), argnums=(0, 1)))
    first = {"surrogate": _first_call_s(lambda: sur_g(m, d)), "diffrax": _first_call_s(lambda: dfx_g(m, d))}
    fd = lambda: _fd_value_and_grad(DEMO["m"], DEMO["d"])
    s = {
        "surrogate_s": per_call_s(lambda: sur_g(m, d), **timing),
        "diffrax_s": per_call_s(lambda: dfx_g(m, d), **timing),
        "solve_ivp_fd_s": per_call_s(fd, **timing),
    }
    grads = {"surrogate": sur_g(m, d)[1], "diffrax": dfx_g(m, d)[1], "solve_ivp_fd": fd()[1]}
    return {
        **{k: sig(v) for k, v in s.items()},
        **_ratios(s["surrogate_s"], solve_ivp_fd=s["solve_ivp_fd_s"], diffrax=s["diffrax_s"]),
        "first_call_s": {k: sig(v) for k, v in first.items()},
        "loss": "sum over the 201 times of Angle [rad] squared; value and gradient w.r.t. (m, d)",
        "solve_ivp_fd_scheme": f"forward differences, 3 solves per gradient (1 base + 2 "
        f"perturbed; central would need 4), step {FD_STEP_REL:g}·|θ|",
        "gradient_dL_dm_dL_dd": {k: [sig(g, 6) for g in v] for k, v in grads.items()},
    }


def _batch_params(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(*BATCH_BOX["m"], n), rng.uniform(*BATCH_BOX["d"], n)


def _loop(fn, ms, ds):
    return lambda: [fn(float(a), float(b)) for a, b in zip(ms, ds)]


def _batch(sur_v, dfx_v, ivp_one, n: int, n_loop: int, seed: int, timing) -> dict:
    ms_np, ds_np = _batch_params(n, seed)
    ms, ds = jnp.asarray(ms_np), jnp.asarray(ds_np)
    first = {
        "surrogate": _first_call_s(lambda: sur_v(ms, ds)),
        "diffrax": _first_call_s(lambda: dfx_v(ms, ds)),
    }
    loop_s = per_call_s(_loop(ivp_one, ms_np[:n_loop], ds_np[:n_loop]), **timing)
    s = {
        "surrogate_s": per_call_s(lambda: sur_v(ms, ds), **timing),
        "diffrax_s": per_call_s(lambda: dfx_v(ms, ds), **timing),
        "solve_ivp_loop_s": loop_s * n / n_loop,
    }
    return {
        "n": n,
        **{k: sig(v) for k, v in s.items()},
        **_ratios(s["surrogate_s"], solve_ivp_loop=s["solve_ivp_loop_s"], diffrax=s["diffrax_s"]),
        "first_call_s": {k: sig(v) for k, v in first.items()},
        "solve_ivp_loop_timed_n": n_loop,
        "solve_ivp_loop_note": f"a Python loop timed on the first {n_loop} parameter sets and "
        f"scaled linearly to {n}",
        "params": f"m ~ U{BATCH_BOX['m']}, d ~ U{BATCH_BOX['d']}, numpy default_rng({seed}); "
        "other inputs at the demo setting",
    }


def forward_batch(sur, dfx, n, n_loop, seed, timing) -> dict:
    return _batch(jax.jit(jax.vmap(sur)), jax.jit(jax.vmap(dfx)), _solve_ivp, n, n_loop, seed, timing)


def grad_batch(sur, dfx, n, n_loop, seed, timing) -> dict:
    vg = lambda f: jax.jit(jax.vmap(jax.value_and_grad(_loss(f), argnums=(0, 1))))
    out = _batch(vg(sur), vg(dfx), _fd_value_and_grad, n, n_loop, seed, timing)
    out["solve_ivp_fd_scheme"] = "forward differences, 3 solves per parameter set"
    return out


# --- NUTS -----------------------------------------------------------------------------------


def _synthetic_angle(seed: int) -> np.ndarray:
    clean = _solve_ivp(DEMO["m"], DEMO["d"])[ANGLE]
    return clean + np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, clean.shape)


def _nuts_one(forward, y: np.ndarray, warmup: int, samples: int, seed: int, chain_method: str) -> dict:
    import arviz as az

    from inference.model import ModelSpec, Noise, build_model
    from inference.nuts import MCMCSettings, chain_method_name, run_mcmc
    from inference.priors import Prior

    spec = ModelSpec(
        priors={"m": Prior("loguniform", 0.1, 1.0), "d": Prior("uniform", 0.05, 0.5)},
        observables=(ANGLE,),
        noise={ANGLE: Noise(sigma=NOISE_SIGMA)},
    )
    model = build_model(lambda th: forward(th["m"], th["d"]), spec)
    settings = MCMCSettings(
        chains=CHAINS, warmup=warmup, samples=samples, seed=seed, chain_method=chain_method
    )
    mcmc, wall_s = run_mcmc(model, {"y": {ANGLE: jnp.asarray(y)}}, settings, progress=False)
    ess = az.ess(az.from_numpyro(mcmc, log_likelihood=False), var_names=["m", "d"])
    min_ess = min(float(ess[k]) for k in ("m", "d"))
    post = mcmc.get_samples()
    return {
        "wall_s": sig(wall_s),
        "min_ess_bulk": sig(min_ess),
        "ess_per_s": sig(min_ess / wall_s),
        "divergences": int(np.sum(mcmc.get_extra_fields()["diverging"])),
        "chain_method": chain_method_name(mcmc),
        "posterior_mean": {k: sig(np.mean(post[k]), 5) for k in ("m", "d")},
    }


def _nuts_all(forwards: dict, y, warmup: int, samples: int, seed: int, method: str, done: dict):
    for name, fwd in forwards.items():
        _log(f"NUTS with the {name} forward ({CHAINS} chains, {warmup}+{samples}, chains {method})")
        done[name] = _nuts_one(fwd, y, warmup, samples, seed, method)


def nuts(sur, dfx, warmup: int, samples: int, seed: int, chain_method: str) -> dict:
    y, forwards, out = _synthetic_angle(seed), {"surrogate": sur, "diffrax": dfx}, {}
    _nuts_all(forwards, y, warmup, samples, seed, chain_method, out)
    return {
        "chains": CHAINS,
        "warmup": warmup,
        "samples": samples,
        **out,
        "wall_speedup_vs_diffrax": sig(out["diffrax"]["wall_s"] / out["surrogate"]["wall_s"], 3),
        "ess_per_s_ratio_vs_diffrax": sig(
            out["surrogate"]["ess_per_s"] / max(out["diffrax"]["ess_per_s"], 1e-300), 3
        ),
        "model": f"m ~ LogUniform(0.1, 1), d ~ Uniform(0.05, 0.5); Normal likelihood on {ANGLE} "
        f"with fixed sigma {NOISE_SIGMA} (no surrogate-error term); data: solve_ivp at the demo "
        f"setting + N(0, {NOISE_SIGMA}²) noise, numpy default_rng({seed})",
        "note": "wall_s is run_mcmc's wall time, tracing and compilation included; ESS is arviz "
        f"bulk ESS, minimum over m and d; truth m = {DEMO['m']}, d = {DEMO['d']}; the ratios compare "
        "runs with the same chain_method",
    }


# --- the run --------------------------------------------------------------------------------


def machine() -> dict:
    import diffrax
    import scipy
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_start": sig(os.getloadavg()[0], 3),
        "platform": platform.platform(),
        "processor": processor(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "numpyro": numpyro.__version__,
        "diffrax": diffrax.__version__,
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
    }


def setting(args, surrogate) -> dict:
    return {
        **DEMO,
        "times_s": f"{len(TIMES_S)} points on [0, {smib.T_MAX_S:g}]",
        "weights": str(args.weights),
        "weights_sha256": surrogate.card.get("sha256"),
        "surrogate_hidden": surrogate.card["architecture"]["hidden"],
        "solve_ivp": f"DOP853, rtol {smib_reference.RTOL:g}, atol {smib_reference.ATOL:g}",
        "diffrax": "Tsit5, PID controller, rtol 1e-08, atol 1e-10, dt0 0.01",
        "dtype": str(jnp.zeros(()).dtype),
        "quick": args.quick,
        "seed": args.seed,
        "timing": "median over repeats of mean seconds per call; JAX functions called once "
        "before timing and block_until_ready on every call",
    }


def _parse(argv=None):
    from surrogates.power.smib_pinn import WEIGHTS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=WEIGHTS, help="surrogate weights (.safetensors)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: fewer repeats, batch 100, NUTS 100+100 unless given"
    )
    p.add_argument("--warmup", type=int, default=None, help="NUTS warmup per chain (300; quick 100)")
    p.add_argument("--samples", type=int, default=None, help="NUTS samples per chain (300; quick 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--chain-method",
        choices=("auto", "parallel", "vectorized"),
        default="auto",
        help="NUTS chains: auto = run_mcmc's choice (parallel with one device per chain)",
    )
    args = p.parse_args(argv)
    nuts_default = 100 if args.quick else 300
    args.warmup = nuts_default if args.warmup is None else args.warmup
    args.samples = nuts_default if args.samples is None else args.samples
    return args


def main(argv=None) -> int:
    from surrogates.pinn.card import WeightsHashError
    from surrogates.power.smib_models import SmibSurrogate

    args = _parse(argv)
    try:
        surrogate = SmibSurrogate(args.weights)
    except (FileNotFoundError, WeightsHashError) as err:
        print(f"--weights {args.weights}: {err}", file=sys.stderr)
        return 2
    timing = {"repeats": 3, "min_s": 0.05} if args.quick else {"repeats": 7, "min_s": 0.2}
    n, n_loop = (100, 10) if args.quick else (1000, 50)
    sur, dfx = _surrogate_forward(surrogate), _diffrax_forward()
    report, host = {"setting": setting(args, surrogate)}, machine()  # load average before we add any
    _log("one trajectory, forward")
    report["forward_one"] = forward_one(sur, dfx, timing)
    _log("one trajectory, forward + gradient")
    report["grad_one"] = grad_one(sur, dfx, timing)
    _log(f"batch of {n}, forward")
    report[f"forward_batch_{n}"] = forward_batch(sur, dfx, n, n_loop, args.seed, timing)
    _log(f"batch of {n}, forward + gradient")
    report[f"grad_batch_{n}"] = grad_batch(sur, dfx, n, n_loop, args.seed, timing)
    report["nuts"] = nuts(sur, dfx, args.warmup, args.samples, args.seed, args.chain_method)
    report["machine"] = host
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
