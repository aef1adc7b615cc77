"""The state-of-health report of a battery lab: per-cycle calibrations of every cell, on one page.

Input is the run's ``soh.csv`` in long format (one row per cell, cycle and quantity) plus the
trend alarms, the cycles skipped or failed and the run settings. The page says first how many
cycles can be trusted, then shows per cell the parameters, capacity and SOH against cycle with
their 90 % posterior bands, and the numbers behind them. Figures are base64 ``data:`` URIs and
the style is inline, as in ``bayespinn.report``, so the file stands alone.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter

from bayespinn.report import _e, _figure, _fmt, _is_number, _key_values, _page, _write_atomic

__all__ = ["write_soh_report"]

REQUIRED_COLUMNS = (
    "Cell", "Cycle", "quantity", "mean", "sd", "q5", "q50", "q95",
    "truth", "c_rate", "converged", "k_hat", "note",
)  # fmt: skip
PARAMETERS = ("positive_diffusivity_scale", "negative_j0_scale")
CAPACITY = "capacity [A.h]"
SOH = "soh"
_TITLE = "Battery state-of-health report"
_BAND = "#1f77b4"


def write_soh_report(
    path: Path,
    table: pd.DataFrame,
    *,
    alarms: list[dict],
    skipped: list[dict],
    failed: list[dict],
    settings: dict,
) -> Path:
    """Write ``soh_report.html`` to ``path`` (atomically: temporary file, then rename) and return ``path``.

    Parameters
    ----------
    table
        The run's ``soh.csv``: columns ``REQUIRED_COLUMNS``, one row per (cell, cycle, quantity);
        ``P(soh < x)`` rows carry the probability in ``mean``.
    alarms
        ``{"cell", "quantity", "cycle", "p_value", "message"}``: a trend broke at that cycle.
    skipped, failed
        ``{"cell", "cycle", "reason"}`` and ``{"cell", "cycle", "error"}``: cycles not fitted.
    settings
        Flat dict of run settings, shown as a table; ``soh_threshold`` draws the SOH limit.

    Raises
    ------
    ValueError
        A required column is missing, or a (cell, cycle, quantity) appears twice.
    """
    path = Path(path)
    table = _checked(table)
    cycles = _cycle_status(table)
    threshold = settings.get("soh_threshold")
    threshold = float(threshold) if _is_number(threshold) else None
    open_before = set(plt.get_fignums())
    try:
        body = [
            _summary_section(cycles, alarms, skipped, failed, settings),
            *(_cell_section(cell, table, cycles, alarms, threshold) for cell in pd.unique(table["Cell"])),
            _list_section("alarms", "Alarms", alarms, ("cell", "quantity", "cycle", "p_value", "message")),
            _list_section("skipped", "Skipped cycles", skipped, ("cell", "cycle", "reason")),
            _list_section("failed", "Failed calibrations", failed, ("cell", "cycle", "error")),
            _settings_section(settings),
        ]
    finally:
        # A figure left open by a section that failed half-way would leak across calls.
        for number in set(plt.get_fignums()) - open_before:
            plt.close(number)
    _write_atomic(path, _page(_TITLE, body))
    return path


# --- input ----------------------------------------------------------------------------------


def _checked(table: pd.DataFrame) -> pd.DataFrame:
    """A copy with the columns checked and normalised (CSV reads turn "" notes into NaN)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"soh table: missing column(s) {', '.join(map(repr, missing))}; "
            f"expected {', '.join(REQUIRED_COLUMNS)}"
        )
    table = table.copy()
    table["Cell"] = table["Cell"].astype(str)
    table["note"] = table["note"].fillna("").astype(str)
    table["converged"] = table["converged"].map(_as_bool)
    duplicated = table.duplicated(["Cell", "Cycle", "quantity"])
    if duplicated.any():
        cell, cycle, quantity = table.loc[duplicated, ["Cell", "Cycle", "quantity"]].iloc[0]
        raise ValueError(f"soh table: cell {cell!r} cycle {cycle} has more than one {quantity!r} row")
    return table


def _as_bool(value) -> bool:
    """True only for a clear yes: an unknown convergence is treated as a failed check."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value) if value is not None and not pd.isna(value) else False


def _cycle_status(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (Cell, Cycle): C-rate, converged (all rows), the distinct notes, the Pareto k̂."""
    grouped = table.groupby(["Cell", "Cycle"], sort=False)
    return pd.DataFrame(
        {
            "c_rate": grouped["c_rate"].first(),
            "converged": grouped["converged"].all(),
            "note": grouped["note"].agg(lambda s: "; ".join(dict.fromkeys(n for n in s if n))),
            "k_hat": grouped["k_hat"].max(),
        }
    )


def _is_probability(quantity: str) -> bool:
    return quantity.startswith("P(")


def _quantities(table: pd.DataFrame) -> list[str]:
    """Parameters (known ones first), capacity, SOH, then probabilities: the order of the page."""
    present = list(pd.unique(table["quantity"]))
    indicators = (CAPACITY, SOH)
    parameters = [q for q in PARAMETERS if q in present] + [
        q for q in present if q not in PARAMETERS and q not in indicators and not _is_probability(q)
    ]
    return parameters + [q for q in indicators if q in present] + [q for q in present if _is_probability(q)]


# --- sections -------------------------------------------------------------------------------


def _summary_section(cycles, alarms, skipped, failed, settings) -> str:
    cells = dict.fromkeys(
        [*cycles.index.get_level_values("Cell"), *(str(d.get("cell")) for d in skipped + failed)]
    )
    bad = cycles[~cycles["converged"]]
    how = ", ".join(f"{k} {_e(settings[k])}" for k in ("engine", "surrogate") if k in settings)
    text = (
        f'<p class="summary">{_count(len(cells), "cell")}: {_count(len(cycles), "cycle")} calibrated'
        f"{f' ({how})' if how else ''}, {len(skipped)} skipped, {len(failed)} failed, "
        f"{len(bad)} not converged; {_count(len(alarms), 'alarm')}. "
        "Intervals are central 90 % posterior bands (5 % to 95 % quantiles).</p>"
    )
    return f"<h1>{_TITLE}</h1>{text}{_trust_block(bad, failed)}"


def _trust_block(bad: pd.DataFrame, failed: list[dict]) -> str:
    if bad.empty and not failed:
        return '<div class="verdict ok"><h3>Every calibrated cycle converged.</h3></div>'
    items = [
        f"<li>{_e(c)}, cycle {_e(k)}: not converged{f' ({_e(r.note)})' if r.note else ''}</li>"
        for (c, k), r in bad.iterrows()
    ]
    items += [
        f"<li>{_e(d.get('cell'))}, cycle {_e(d.get('cycle'))}: failed ({_e(d.get('error'))})</li>"
        for d in failed
    ]
    head = (
        f"{_count(len(bad), 'cycle')} did not converge and {len(failed)} failed: "
        "these cycles' intervals should not be trusted."
    )
    return f'<div class="verdict bad"><h3>{_e(head)}</h3><ul>{"".join(items)}</ul></div>'


def _cell_section(cell: str, table, cycles, alarms, threshold) -> str:
    rows = table[table["Cell"] == cell]
    status = cycles.loc[cell]
    mine = [a for a in alarms if str(a.get("cell")) == cell]
    caption = (
        f"Cell {cell}: posterior median (line) and 5–95 % band per cycle; truth dashed where known; "
        "red crosses mark cycles whose calibration did not converge; dotted verticals mark alarms"
        + (f"; SOH threshold {threshold:g}." if threshold is not None else ".")
    )
    figure = _figure(
        _cell_figure(cell, rows, set(status.index[~status["converged"]]), mine, threshold), caption
    )
    return f"<h2>Cell {_e(cell)}</h2>{figure}{_cell_table(rows, status)}"


def _cell_table(rows: pd.DataFrame, status: pd.DataFrame) -> str:
    quantities = _quantities(rows)
    values = rows.set_index(["Cycle", "quantity"])
    with_k = bool(status["k_hat"].notna().any())
    names = ["cycle", "C-rate", *quantities, *(["Pareto k̂"] if with_k else []), "converged"]
    head = "".join(f"<th>{_e(q)}</th>" for q in names)
    body = "".join(
        f"<tr><td>{_e(cycle)}</td><td>{_e(_fmt(s.c_rate, 2))}</td>"
        + "".join(f"<td>{_e(_cell_value(values, cycle, q))}</td>" for q in quantities)
        + (f"<td>{_e(_fmt(s.k_hat, 2))}</td>" if with_k else "")
        + f"<td>{_e(_converged_text(s))}</td></tr>"
        for cycle, s in status.sort_index().iterrows()
    )
    return f'<table class="cycles"><tr>{head}</tr>{body}</table>'


def _cell_value(values: pd.DataFrame, cycle, quantity: str) -> str:
    """``mean [q5, q95]``, or a percentage for a probability row; ``—`` when the cycle lacks it."""
    if (cycle, quantity) not in values.index:
        return "—"
    r = values.loc[(cycle, quantity)]
    if _is_probability(quantity):
        return f"{_fmt(100 * r['mean'], 1)} %" if np.isfinite(r["mean"]) else "—"
    return f"{_fmt(r['mean'])} [{_fmt(r['q5'])}, {_fmt(r['q95'])}]"


def _converged_text(status: pd.Series) -> str:
    word = "yes" if status["converged"] else "no"
    return f"{word}: {status['note']}" if status["note"] else word


def _list_section(anchor: str, title: str, entries: list[dict], keys: tuple[str, ...]) -> str:
    if not entries:
        return f'<h2 id="{anchor}">{title}</h2><p>none</p>'
    head = "".join(f"<th>{_e(k.replace('_', ' '))}</th>" for k in keys)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(_entry(d.get(k)))}</td>" for k in keys) + "</tr>" for d in entries
    )
    return f'<h2 id="{anchor}">{title}</h2><table class="{anchor}"><tr>{head}</tr>{rows}</table>'


def _entry(value) -> str:
    """Floats to 4 significant digits (p-values); cycles and text as they are."""
    if value is None:
        return "—"
    return _fmt(value) if isinstance(value, float | np.floating) else str(value)


def _settings_section(settings: dict) -> str:
    pairs = [(k, _fmt(v) if _is_number(v) else str(v)) for k, v in settings.items()]
    return '<h2 id="settings">Settings</h2>' + (_key_values(pairs) if pairs else "<p>none</p>")


# --- figure ---------------------------------------------------------------------------------


def _cell_figure(cell: str, rows: pd.DataFrame, bad_cycles: set, alarms: list[dict], threshold: float | None):
    """One panel per parameter, then capacity and SOH, against cycle; probabilities stay in the table."""
    panels = [q for q in _quantities(rows) if not _is_probability(q)]
    ncols = 2 if len(panels) > 1 else 1
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.2 * ncols, 2.9 * nrows), squeeze=False, layout="constrained"
    )
    for ax, quantity in zip(axes.flat, panels, strict=False):
        _panel(ax, rows[rows["quantity"] == quantity].sort_values("Cycle"), quantity, bad_cycles)
        if quantity == SOH and threshold is not None:
            ax.axhline(threshold, color="tab:orange", ls="-.", lw=1.2, label=f"threshold {threshold:g}")
        for alarm in (a for a in alarms if a.get("quantity") == quantity):
            ax.axvline(float(alarm["cycle"]), color="tab:red", ls=":", lw=1.5, label="alarm")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    _figure_legend(fig)
    fig.suptitle(f"Cell {cell}".replace("$", r"\$"))  # a $ in a cell name would start mathtext
    return fig


def _panel(ax, q: pd.DataFrame, quantity: str, bad_cycles: set) -> None:
    cycle = q["Cycle"].to_numpy(dtype=float)
    ax.fill_between(cycle, q["q5"], q["q95"], color=_BAND, alpha=0.25, lw=0, label="5–95 % band")
    ax.plot(cycle, q["q50"], color=_BAND, marker=".", label="median")
    if q["truth"].notna().any():
        ax.plot(cycle, q["truth"], color="k", ls="--", lw=1.2, label="truth")
    bad = q["Cycle"].isin(bad_cycles).to_numpy()
    if bad.any():
        ax.plot(
            cycle[bad], q["q50"].to_numpy()[bad], "x", color="tab:red", ms=9, mew=2, label="not converged"
        )
    band = q[["q5", "q50", "q95"]].to_numpy(dtype=float)
    # The scales are positive factors: a log axis shows a halving and a doubling alike.
    if quantity not in (CAPACITY, SOH) and np.isfinite(band).any() and np.nanmin(band) > 0:
        _log_axis(ax, np.nanmax(band) / np.nanmin(band))
    ax.set_title(quantity, fontsize="medium")
    ax.set_xlabel("Cycle")
    ax.set_ylabel({SOH: "SOH [-]", CAPACITY: "Capacity [A.h]"}.get(quantity, "scale [-]"))


def _log_axis(ax, span: float) -> None:
    """Log y with plain numbers; within a decade only the minor ticks fall in view, so label them too."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    if span < 10:
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))


def _figure_legend(fig) -> None:
    """One legend for the whole figure, each label once, so the panels stay uncluttered."""
    entries = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(entries.values(), entries.keys(), loc="outside lower center", ncols=min(len(entries), 6))


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
