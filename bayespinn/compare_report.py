"""One self-contained HTML page comparing calibration runs: engines, surrogate vs reference, cycles.

The first run is the baseline. For every scalar posterior variable the runs share, the page
overlays the marginal posteriors and tabulates mean, sd and the central 90 % interval per run,
with the shift of the mean in baseline sds, ``(mean − mean_baseline) / sd_baseline``, and the sd
ratio ``sd / sd_baseline``. Figures are base64 ``data:`` URIs, as in ``bayespinn.report``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import arviz as az
import matplotlib.pyplot as plt
import numpy as np

from bayespinn.errors import UserError
from bayespinn.report import _e, _figure, _fmt, _key_values, _page, _seconds, _with_unit, _write_atomic

__all__ = ["compare_runs"]

INTERVAL_PROB = 0.9
_EXPECTED = "expected a run directory written by `bayespinn calibrate` (holding posterior.nc)"


@dataclass(frozen=True)
class _Run:
    label: str
    dir: Path
    draws: dict[str, np.ndarray]  # scalar posterior variables, all chains and draws pooled
    attrs: dict
    diagnostics: dict
    study: dict  # the study.toml copy, parsed; {} when the run has none


def compare_runs(run_dirs: list[Path], out: Path) -> Path:
    """Write the comparison of ``run_dirs`` (the first is the baseline) to ``out``, atomically.

    Every run is read and checked before anything is written; a path that is not a run directory
    raises ``UserError`` naming it. With one run the page shows that run alone (its own full
    report is ``RUN/report.html``).
    """
    if not run_dirs:
        raise UserError(f"report: found no run directory, {_EXPECTED}")
    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        found = "a directory" if out.is_dir() else f"no directory {out.parent}"
        raise UserError(f"report: --out {out}: found {found}, expected a file in an existing directory")
    runs = _read_runs([Path(d) for d in run_dirs])
    open_before = set(plt.get_fignums())
    try:
        body = _body(runs)
    finally:
        for number in set(plt.get_fignums()) - open_before:
            plt.close(number)
    _write_atomic(out, _page("bayespinn comparison: " + ", ".join(r.label for r in runs), body))
    return out


# --- reading --------------------------------------------------------------------------------


def _read_runs(dirs: list[Path]) -> list[_Run]:
    names = [d.resolve().name for d in dirs]
    # Two runs named alike (a/run, b/run) would be told apart by nothing: use the paths then.
    labels = [str(d) if names.count(n) > 1 else n for d, n in zip(dirs, names, strict=True)]
    return [_read_run(d, label) for d, label in zip(dirs, labels, strict=True)]


def _read_run(run_dir: Path, label: str) -> _Run:
    posterior = run_dir / "posterior.nc"
    if not posterior.is_file():
        found = "no posterior.nc" if run_dir.is_dir() else "no such directory"
        raise UserError(f"report: {run_dir}: found {found}, {_EXPECTED}")
    try:
        post = az.from_netcdf(str(posterior)).posterior
    except (OSError, ValueError, AttributeError) as exc:
        raise UserError(f"report: {posterior}: cannot be read as ArviZ InferenceData ({exc})") from None
    draws = {
        str(v): np.asarray(post[v].values, dtype=float).ravel()
        for v in post.data_vars
        if post[v].dims == ("chain", "draw")
    }
    return _Run(label, run_dir, draws, dict(post.attrs), _read_json(run_dir), _read_study(run_dir))


def _read_json(run_dir: Path) -> dict:
    path = run_dir / "diagnostics.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(
            f"report: {path}: found invalid JSON ({exc}), expected the run's diagnostics"
        ) from None


def _read_study(run_dir: Path) -> dict:
    path = run_dir / "study.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            f"report: {path}: found invalid TOML ({exc}), expected the run's study copy"
        ) from None


def _model(run: _Run) -> str:
    return str(run.attrs.get("surrogate") or (run.study.get("surrogate") or {}).get("name", "—"))


def _units(runs: list[_Run]) -> dict[str, str]:
    """Parameter units from the runs' models; names carry no unit in a run directory."""
    from surrogates.registry import UnknownSurrogateError, load

    units: dict[str, str] = {}
    for name in dict.fromkeys(_model(r) for r in runs):
        try:
            units = {**dict(load(name).units), **units}
        except (UnknownSurrogateError, OSError):  # an unknown or moved model: names without units
            continue
    return units


# --- sections -------------------------------------------------------------------------------


def _body(runs: list[_Run]) -> list[str]:
    shared = [v for v in runs[0].draws if all(v in r.draws for r in runs[1:])]
    units = _units(runs)
    return [
        "<h1>Comparison of calibration runs</h1>",
        _runs_section(runs),
        _differences_section(runs, shared, units),
        _only_some_section(runs, shared),
        _overlay_section(runs, shared, units),
    ]


def _runs_section(runs: list[_Run]) -> str:
    head = "".join(
        f"<th>{h}</th>" for h in ("run", "model", "engine", "correction", "data", "converged", "wall time")
    )
    rows = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in _run_row(r)) + "</tr>" for r in runs)
    return (
        f"<h2>Runs</h2><p>The first run, <b>{_e(runs[0].label)}</b>, is the baseline.</p>"
        f'<table class="runs"><tr>{head}</tr>{rows}</table>'
    )


def _run_row(run: _Run) -> list[str]:
    a, d = run.attrs, run.diagnostics
    correct = a.get("correct") or (run.study.get("inference") or {}).get("correct", "none")
    correction = f"{correct} (reference {a['reference']})" if "reference" in a else str(correct)
    converged = {True: "yes", False: "NO"}.get(d.get("converged"), "—")
    if d.get("warnings"):
        n = len(d["warnings"])
        converged += f" ({n} warning{'s' if n > 1 else ''})"
    wall = d.get("wall_time_s", a.get("wall_time_s"))
    return [
        run.label,
        _model(run),
        str(a.get("engine", "—")),
        correction,
        str((run.study.get("data") or {}).get("path", "—")),
        converged,
        _seconds(float(wall) if wall is not None else None),
    ]


def _differences_section(runs: list[_Run], shared: list[str], units: dict) -> str:
    lo, hi = 50 * (1 - INTERVAL_PROB), 50 * (1 + INTERVAL_PROB)
    columns = ("parameter", "run", "mean", "sd", f"{lo:g} %", f"{hi:g} %", "shift [baseline sd]", "sd ratio")
    head = "".join(f"<th>{h}</th>" for h in columns)
    rows = "".join(_difference_rows(runs, name, _with_unit(name, units.get(name))) for name in shared)
    table = (
        f'<table class="differences"><tr>{head}</tr>{rows}</table>'
        if shared
        else "<p>No shared parameter.</p>"
    )
    return (
        f"<h2>Differences against the baseline</h2><p>Central {100 * INTERVAL_PROB:.0f} % interval "
        f"({lo:g} % and {hi:g} % quantiles); shift = (mean − baseline mean) / baseline sd; "
        "sd ratio = sd / baseline sd.</p>" + table
    )


def _difference_rows(runs: list[_Run], name: str, label: str) -> str:
    base_mean, base_sd = _moments(runs[0].draws[name])
    rows = []
    for run in runs:
        x = run.draws[name]
        mean, sd = _moments(x)
        lo, hi = np.quantile(x, [(1 - INTERVAL_PROB) / 2, (1 + INTERVAL_PROB) / 2])
        shift = (mean - base_mean) / base_sd if base_sd > 0 else np.nan
        ratio = sd / base_sd if base_sd > 0 else np.nan
        cells = [label, run.label, _fmt(mean), _fmt(sd), _fmt(lo), _fmt(hi), _fmt(shift, 2), _fmt(ratio, 3)]
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return "".join(rows)


def _moments(x: np.ndarray) -> tuple[float, float]:
    sd = float(np.std(x, ddof=1)) if x.size > 1 else np.nan
    return float(np.mean(x)), sd


def _only_some_section(runs: list[_Run], shared: list[str]) -> str:
    others = dict.fromkeys(v for r in runs for v in r.draws if v not in shared)
    if not others:
        return ""
    pairs = [(v, ", ".join(r.label for r in runs if v in r.draws)) for v in others]
    return (
        "<h2>Not shared by every run</h2><p>Listed, not compared: the runs that hold each.</p>"
        + _key_values(pairs)
    )


def _overlay_section(runs: list[_Run], shared: list[str], units: dict) -> str:
    figures = [_overlay(runs, name, _with_unit(name, units.get(name))) for name in shared]
    return "<h2>Marginal posteriors</h2>" + "".join(figures)


def _overlay(runs: list[_Run], name: str, label: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 3))
    for i, run in enumerate(runs):
        x = run.draws[name]
        colour = plt.cm.tab10(i % 10)
        if np.ptp(x) > 0:
            grid, density = az.kde(x)
            ax.plot(grid, density, color=colour, label=run.label)
        else:  # one repeated value (a collapsed ensemble): no density to estimate
            ax.axvline(x[0], color=colour, label=run.label)
    truths = {r.label: (r.study.get("truth") or {}).get(name) for r in runs}
    values = {float(v) for v in truths.values() if v is not None}
    if len(values) == 1:
        ax.axvline(values.pop(), color="k", ls="--", lw=1, label="truth")
    else:  # runs of different data sets (cycles) each have their own truth
        for i, run in enumerate(runs):
            if truths[run.label] is not None:
                ax.axvline(float(truths[run.label]), color=plt.cm.tab10(i % 10), ls="--", lw=1)
    ax.set_xlabel(label)
    ax.set_ylabel("Posterior density")
    ax.legend(fontsize="small")
    caption = f"{label}: marginal posterior of each run (kernel density)" + (
        "; truth dashed." if any(v is not None for v in truths.values()) else "."
    )
    return _figure(fig, caption)
