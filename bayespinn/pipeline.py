"""``calibrate(study) -> Run``: check everything, sample, write the run directory atomically."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayespinn import checks
from bayespinn.data import Measurements
from bayespinn.domain_flags import domain_flags
from bayespinn.errors import UserError
from bayespinn.held_out_bias import curve_grid, curve_weights, held_out_bias, held_out_flags
from bayespinn.study import ENSEMBLES, Study
from inference.diagnostics import ESS_MIN, bound_flags, summary, verdict
from inference.model import ModelSpec, build_model
from surrogates.base import ForwardModel

__all__ = ["RUN_FILES", "Prepared", "Run", "calibrate", "prepare"]

RUN_FILES = ("posterior.nc", "summary.csv", "diagnostics.json", "report.html", "study.toml", "log.txt")
log = logging.getLogger("bayespinn")


@dataclass(frozen=True)
class Run:
    dir: Path
    table: pd.DataFrame
    diagnostics: dict


@dataclass(frozen=True)
class Prepared:
    """A study checked against its model and data, with the NumPyro model built."""

    study: Study
    model: ForwardModel
    data: Measurements
    spec: ModelSpec
    numpyro_model: object


def prepare(study: Study) -> Prepared:
    """All checks of the study, the model and the data; raises UserError before anything is written."""
    model = checks.load_model(study)
    checks.check_names(study, model)
    domain = checks.check_domain(study, model)
    data = checks.load_data(study, model, domain)
    noise = checks.resolve_noise(study, data)
    study = _resolve_surrogate_error(study, model, data)
    surrogate_sigma = {}
    if study.inference.surrogate_error == "rmse":
        # A surrogate whose error is relative (a well's pressure drop) gives one σ per reading.
        by_reading = getattr(model, "surrogate_sd", None)
        surrogate_sigma = by_reading(study.conditions, data.values) if by_reading else model.validation_rmse()
    spec = ModelSpec(
        priors=study.priors,
        observables=tuple(data.values),
        noise=noise,
        surrogate_sigma={k: surrogate_sigma.get(k, 0.0) for k in data.values},
        surrogate_factor=_error_factors(model, study, data)
        if study.inference.surrogate_error == "correlated"
        else {},
        likelihood=study.inference.likelihood,
    )
    return Prepared(study, model, data, spec, build_model(_forward(model, study, data), spec))


def _resolve_surrogate_error(study: Study, model: ForwardModel, data: Measurements) -> Study:
    """``auto``: the error model the surrogate's measured coverage favours (its
    ``surrogate_error``, "correlated" for ``power.smib``) where it can run, else the RMSE in
    quadrature: a surrogate without residual curves, an ensemble or Pyro engine, a Student-t
    likelihood, or a battery record that stops before its knee (case_studies/exactness).

    With a correction: the correlated model for importance sampling wherever it can run (its
    wider posterior is the proposal that covers the exact one), else none."""
    inf = study.inference
    if inf.surrogate_error != "auto":
        return study
    usable = (
        (getattr(model, "surrogate_error", "rmse") == "correlated" or inf.correct == "importance")
        and inf.correct != "delayed-acceptance"
        and hasattr(model, "validation_residuals")
        and inf.engine not in ENSEMBLES
        and inf.backend == "numpyro"
        and inf.likelihood == "normal"
    )
    if usable:
        try:
            curve_grid(model, study.conditions, data)
        except ValueError:
            usable = False
    chosen = "correlated" if usable else "rmse" if inf.correct == "none" else "off"
    return dataclasses.replace(study, inference=dataclasses.replace(inf, surrogate_error=chosen))


def _error_factors(model: ForwardModel, study: Study, data: Measurements) -> dict:
    """Low-rank factors of the surrogate's error on the data times, from its held-out residuals.

    Curves measured near the study's known conditions weigh more (each condition scaled by its
    range in the model's domain): the error of a surrogate varies over its box.
    """
    from inference.surrogate_error import error_factor

    if not hasattr(model, "validation_residuals"):
        raise UserError(
            f"{study.path}: [inference] surrogate_error: found 'correlated', expected rmse or off for "
            f"{model.name!r}, which ships no validation residuals"
        )
    held_out = model.validation_residuals(study.conditions)
    try:
        at = curve_grid(model, study.conditions, data)
    except ValueError as exc:
        raise UserError(f"{data.path}: {exc}") from None
    weights = curve_weights(model, study.conditions, held_out["inputs"], study.conditions)
    return {
        obs: error_factor(held_out["residuals"][obs], held_out["grid"], at, weights) for obs in data.values
    }


def _forward(model: ForwardModel, study: Study, data: Measurements):
    import jax.numpy as jnp

    t_s = jnp.asarray(data.time_s)
    conditions = dict(study.conditions)

    def forward(theta: dict) -> dict:
        return model.jax_forward(t_s, **conditions, **theta)

    return forward


def sample(prep: Prepared, progress: bool = True):
    """Run the engine; returns (InferenceData, summary table, diagnostics)."""
    from bayespinn.engines import APPROXIMATE, run_engine

    idata, wall = run_engine(prep, progress)
    table = summary(idata, list(prep.study.priors), prep.study.truth or None)
    diagnostics = {**verdict(idata, table), "wall_time_s": wall, "flags": _flags(prep, idata)}
    engine = prep.study.inference.engine
    if engine in APPROXIMATE:
        diagnostics["approximation"] = APPROXIMATE[engine]
    if prep.study.inference.correct != "none":
        attrs = {k: idata.posterior.attrs[k] for k in idata.posterior.attrs}
        return _corrected(prep, idata, table, diagnostics, attrs)
    return idata, table, diagnostics


def _flags(prep: Prepared, idata) -> list[str]:
    """What shapes the posterior besides the data: a prior's bound, the surrogate's box."""
    bounds = {k: p.support() for k, p in prep.study.priors.items()}
    log_scale = {k for k, p in prep.study.priors.items() if p.kind == "loguniform"}
    return bound_flags(idata, bounds, log_scale=log_scale) + domain_flags(prep, idata)


def _corrected(prep: Prepared, idata, table, diagnostics: dict, attrs: dict):
    """The reference correction of the surrogate posterior, with what it changed and cost."""
    import jax.numpy as jnp

    from bayespinn.reference import correct, reference_of
    from inference.arviz_adapter import replace_posterior

    t0 = time.perf_counter()
    method = prep.study.inference.correct
    ref, spec, ref_model = reference_of(prep)
    y = {k: jnp.asarray(v) for k, v in prep.data.values.items()}
    samples, record = correct(prep, idata, method, (ref, spec, ref_model), y)
    attrs = {**attrs, "correct": method, "reference": ref.name}
    new = replace_posterior(idata, samples, ref_model, {"y": y}, seed=prep.study.inference.seed, attrs=attrs)
    new_table = summary(new, list(prep.study.priors), prep.study.truth or None)
    record["wall_time_s"] = time.perf_counter() - t0
    record["surrogate_posterior"] = {
        name: {
            "mean": float(table.loc[name, "mean"]),
            "sd": float(table.loc[name, "sd"]),
            "shift_in_corrected_sd": float(
                (table.loc[name, "mean"] - new_table.loc[name, "mean"]) / new_table.loc[name, "sd"]
            ),
        }
        for name in prep.study.priors
    }
    if method == "importance":
        # Its checks already hold what of the surrogate run still matters.
        checks = _importance_checks(record, diagnostics, new_table, table)
        checks["converged"] = not checks["warnings"]
    else:
        checks = verdict(new, new_table)
        checks["converged"] = diagnostics["converged"] and not checks["warnings"]
    # The flags are the corrected posterior's, of the reference: a surrogate chain stuck at a bound
    # the reference weighs at zero leaves the corrected draws clear of it (its flag stays in
    # surrogate_run), and the surrogate's box no longer bounds what the draws mean.
    checks["flags"] = _flags(dataclasses.replace(prep, model=ref), new)
    wall = diagnostics["wall_time_s"] + record["wall_time_s"]
    return new, new_table, {**checks, "wall_time_s": wall, "surrogate_run": diagnostics, "correction": record}


def _importance_checks(record: dict, surrogate_checks: dict, new_table, table) -> dict:
    """Resampled draws repeat themselves, so their R-hat and ESS say nothing: the effective sample
    size is the importance weights' (in place), and the R-hat the surrogate chains', which the
    weights assume are draws of the surrogate posterior. Refined weights assume nothing of the
    chains: their draws are the Student-t's."""
    new_table["r_hat"] = np.nan if record["refined"] else table["r_hat"]
    new_table["ess_bulk"] = new_table["ess_tail"] = record["ess"]
    # verdict's "ESS …" warning was about the chains; the weights' ESS is checked below.
    warnings = (
        [] if record["refined"] else [w for w in surrogate_checks["warnings"] if not w.startswith("ESS ")]
    )
    if not record["trusted"]:
        warnings.append(
            f"importance weights: Pareto k̂ {record['k_hat']:.2f} > 0.7, the reweighted posterior is not to be "
            'trusted; use correct = "delayed-acceptance"'
        )
    if record["ess"] < ESS_MIN:
        warnings.append(
            f"importance weights: effective sample size {record['ess']:.0f} < {ESS_MIN:.0f}; "
            'draw more samples or use correct = "delayed-acceptance"'
        )
    return {
        **surrogate_checks,
        "min_ess_bulk": record["ess"],
        "min_ess_tail": record["ess"],
        "warnings": warnings,
    }


def _meta(prep: Prepared) -> dict:
    study = prep.study
    return {
        "title": f"{study.path.stem}: {prep.model.name}",
        "surrogate": prep.model.name,
        "card": prep.model.card,
        "parameters": list(study.priors),
        "observables": list(prep.data.values),
        "units": dict(prep.model.units),
        "truth": study.truth or None,
        "conditions": study.conditions,
        "study_path": str(study.path),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "versions": _versions(),
    }


def _versions() -> str:
    """The versions a run's numbers depend on, for the report's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("bayespinn", "numpyro", "jax", "arviz", "numpy", "scipy"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:  # pragma: no cover - all are install requirements
            found.append(f"{package} not installed")
    return ", ".join(found)


def _write(prep: Prepared, idata, table, diagnostics, log_text: str) -> Path:
    """Write every file into a temporary sibling directory, then move it into place."""
    from bayespinn.report import write_report

    out = prep.study.output_dir
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        idata.to_netcdf(str(tmp / "posterior.nc"))
        table.to_csv(tmp / "summary.csv")
        (tmp / "diagnostics.json").write_text(json.dumps(diagnostics, indent=2, default=_json) + "\n")
        (tmp / "study.toml").write_text(prep.study.text)
        write_report(tmp / "report.html", idata, table, diagnostics, _meta(prep))
        (tmp / "log.txt").write_text(log_text)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _json(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _held_out_bias(prep: Prepared, idata, diagnostics: dict, note) -> None:
    """What the surrogate's held-out errors would do to a record like this (``bayespinn.held_out_bias``);
    flagged only where no reference check measured the shift at this record itself."""
    bias = held_out_bias(prep, idata)
    if bias is None:
        return
    diagnostics["held_out_bias"] = bias
    medians = ", ".join(f"{k} {v['median_abs_sd']:.2f} sd" for k, v in bias["parameters"].items())
    note(
        f"held-out cells: a record like this one would be off by a median {medians} ({bias['curves']} cells)"
    )
    if "reference_check" not in diagnostics:
        diagnostics["flags"] = diagnostics.get("flags", []) + held_out_flags(bias, prep.model.name)


def calibrate(study: Study, progress: bool = True, check_reference: bool = False) -> Run:
    """Check, sample, diagnose and write ``study.output_dir``; returns the run.

    ``check_reference`` re-runs posterior draws through the reference solver and flags a
    surrogate error that moves the posterior (``bayespinn.reference.check_reference``).
    """
    from bayespinn import reference

    lines: list[str] = []
    note = lines.append
    t0 = time.perf_counter()
    prep = prepare(study)
    if check_reference:
        reference.reference_of(prep)  # a study on the reference itself is refused before sampling
    note(
        f"study {study.path}; model {prep.model.name}; {len(prep.data.time_s)} times; "
        f"observables {', '.join(prep.data.values)}"
    )
    note(
        f"engine {study.inference.engine}: {study.inference.chains} chains, "
        f"{study.inference.warmup} warmup, {study.inference.samples} samples, seed {study.inference.seed}"
    )
    idata, table, diagnostics = sample(prep, progress)
    note(f"sampling took {diagnostics['wall_time_s']:.1f} s; converged: {diagnostics['converged']}")
    if getattr(prep.model, "faster", None):
        note(
            f"hint: model = {prep.model.faster!r} samples the same posterior several times faster "
            "(this surrogate tabulated at the study's conditions)"
        )
    if check_reference:
        check = reference.check_reference(prep, idata)
        diagnostics["reference_check"] = check
        diagnostics["flags"] = diagnostics.get("flags", []) + reference.reference_flags(check)
        shifts = ", ".join(f"{k} {v:+.2f} sd" for k, v in check["mean_shift_in_sd"].items())
        note(f"reference check: {check['draws']} draws through {check['reference']}; mean shifts {shifts}")
    if study.inference.correct == "none":
        _held_out_bias(prep, idata, diagnostics, note)
    for warning in diagnostics["warnings"]:
        note(f"warning: {warning}")
    note(f"total {time.perf_counter() - t0:.1f} s")
    for line in lines:
        log.info(line)
    out = _write(prep, idata, table, diagnostics, "\n".join(lines) + "\n")
    return Run(out, table, diagnostics)
