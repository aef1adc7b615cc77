"""The state-of-health report: counts that add up, a warning only when a cycle is untrustworthy, escaped
names, embedded PNGs, an atomic write and a clear error for a malformed table."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from bayespinn import soh_report
from bayespinn.soh_report import REQUIRED_COLUMNS, _cell_figure, write_soh_report

PLAIN, ODD = "cell-A", "<b>cell-B"  # ODD's unclosed <b> would turn the rest of the page bold
PROBABILITY = "P(soh < 0.8)"
ALARM = {"cell": PLAIN, "quantity": "soh", "cycle": 6, "p_value": 0.0031, "message": "SOH slope doubled"}
SKIPPED = {"cell": PLAIN, "cycle": 9, "reason": "voltage < 2.5 V at start"}
FAILED = {"cell": ODD, "cycle": 9, "error": "RuntimeError: NaN in the surrogate"}
SETTINGS = {"engine": "nuts", "surrogate": "spm.pinn", "soh_threshold": 0.8, "wall_time_s": 812.4}


def _rows(cell: str, cycle: int, truth: bool) -> list[dict]:
    """The rows of one (cell, cycle): both parameters, capacity, SOH and the probability."""
    fade = 1.0 - 0.03 * (cycle - 1)
    medians = {"positive_diffusivity_scale": 1.2 * fade, "negative_j0_scale": 0.9 * fade}
    medians |= {"capacity [A.h]": 5.0 * fade, "soh": fade}
    common = {"Cell": cell, "Cycle": cycle, "c_rate": 0.5, "converged": True, "k_hat": np.nan, "note": ""}
    rows = [
        {**common, "quantity": q, "mean": m, "sd": 0.02 * m, "q5": 0.96 * m, "q50": m, "q95": 1.04 * m}
        | {"truth": 1.01 * m if truth else np.nan}
        for q, m in medians.items()
    ]
    p = 0.0 if fade > 0.85 else 0.25
    nan = {k: np.nan for k in ("sd", "q5", "q50", "q95", "truth")}
    return [*rows, {**common, **nan, "quantity": PROBABILITY, "mean": p}]


def _table(nonconverged: bool = True) -> pd.DataFrame:
    table = pd.DataFrame(
        [r for cell in (PLAIN, ODD) for cycle in range(1, 9) for r in _rows(cell, cycle, cell == PLAIN)]
    )
    if nonconverged:  # every row of the cycle is flagged: the count must still be one cycle
        bad = (table["Cell"] == ODD) & (table["Cycle"] == 4)
        table.loc[bad, "converged"] = False
        table.loc[bad, "note"] = "R-hat 1.08"
    return table


def _write(tmp_path, table=None, **kwargs):
    lists = {"alarms": [ALARM], "skipped": [SKIPPED], "failed": [FAILED], "settings": SETTINGS} | kwargs
    path = write_soh_report(tmp_path / "soh_report.html", _table() if table is None else table, **lists)
    return path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The full report of the synthetic run, written once: its figures are the slow part."""
    return _write(tmp_path_factory.mktemp("soh"))


@pytest.fixture
def cheap_figures(monkeypatch):
    """A blank figure per cell, for tests about the text only."""
    monkeypatch.setattr(soh_report, "_cell_figure", lambda *args: plt.figure(figsize=(1, 1)))


def _section(text: str, anchor: str) -> str:
    """The HTML from the heading ``id=anchor`` to the next ``<h2``."""
    start = text.index(f'id="{anchor}"')
    end = text.find("<h2", start)
    return text[start : end if end >= 0 else len(text)]


class _Balance(HTMLParser):
    """Fails on a closing tag that does not match the open one; ``stack`` must end empty."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def test_writes_balanced_html_with_one_png_per_cell(report):
    path, text = report
    assert path.name == "soh_report.html" and path.is_file()
    parser = _Balance()
    parser.feed(text)
    parser.close()
    assert parser.stack == []
    sources = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', text)
    assert len(sources) == text.count("<img") == 2
    assert all(base64.b64decode(s).startswith(b"\x89PNG\r\n\x1a\n") for s in sources)


def test_summary_counts_cells_cycles_and_problems(report):
    _, text = report
    summary = re.search(r'<p class="summary">(.*?)</p>', text, re.DOTALL).group(1)
    assert "2 cells: 16 cycles calibrated" in summary
    for part in ("1 skipped", "1 failed", "1 not converged", "1 alarm."):
        assert part in summary


@pytest.mark.parametrize(
    ("nonconverged", "failed", "warned"),
    [(True, [FAILED], True), (True, [], True), (False, [FAILED], True), (False, [], False)],
)
def test_warning_only_for_untrustworthy_cycles(tmp_path, cheap_figures, nonconverged, failed, warned):
    _, text = _write(tmp_path, _table(nonconverged), failed=failed)
    assert ('class="verdict bad"' in text) is warned
    assert ("should not be trusted" in text) is warned
    assert ('class="verdict ok"' in text) is not warned


def test_alarm_skipped_failed_and_settings_are_listed(report):
    _, text = report
    alarms = _section(text, "alarms")
    assert all(s in alarms for s in ("SOH slope doubled", "0.0031", "<td>6</td>", "cell-A"))
    assert "voltage &lt; 2.5 V at start" in _section(text, "skipped")
    failed = _section(text, "failed")
    assert "RuntimeError: NaN in the surrogate" in failed and "&lt;b&gt;cell-B" in failed
    settings = _section(text, "settings")
    assert all(s in settings for s in ("nuts", "spm.pinn", "812.4"))


def test_empty_lists_say_none(tmp_path, cheap_figures):
    _, text = _write(tmp_path, alarms=[], skipped=[], failed=[], settings={})
    for anchor in ("alarms", "skipped", "failed", "settings"):
        assert "<p>none</p>" in _section(text, anchor)


def test_cell_name_is_escaped(report):
    _, text = report
    assert "<b>" not in text
    assert "<h2>Cell &lt;b&gt;cell-B</h2>" in text


def test_cell_table_rows(report):
    _, text = report
    odd = text[text.index("<h2>Cell &lt;b&gt;cell-B") :]
    rows = re.findall(r"<tr><td>(\d+)</td>(.*?)</tr>", odd[: odd.index("</table>")])
    assert [int(c) for c, _ in rows] == list(range(1, 9))
    cycle4 = dict(rows)["4"]
    assert "<td>no: R-hat 1.08</td>" in cycle4
    assert "<td>0.91 [0.8736, 0.9464]</td>" in cycle4  # soh: mean [q5, q95]
    assert "<td>0.0 %</td>" in cycle4 and "<td>25.0 %</td>" in dict(rows)["8"]
    assert "<td>yes</td>" in dict(rows)["1"]


def test_figure_panels_log_axes_alarm_and_crosses():
    table = _table()
    rows = table[table["Cell"] == PLAIN]
    fig = _cell_figure(PLAIN, rows, {3}, [ALARM], 0.8)
    try:
        visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
        titles = [ax.get_title() for ax in visible]
        assert titles == ["positive_diffusivity_scale", "negative_j0_scale", "capacity [A.h]", "soh"]
        assert [ax.get_yscale() for ax in visible] == ["log", "log", "linear", "linear"]
        soh = visible[3]
        dotted = [ln for ln in soh.lines if ln.get_linestyle() == ":"]
        assert len(dotted) == 1 and list(dotted[0].get_xdata()) == [6, 6]
        assert any(list(ln.get_ydata()) == [0.8, 0.8] for ln in soh.lines)  # the threshold
        assert not any(ln.get_linestyle() == ":" for ax in visible[:3] for ln in ax.lines)
        crosses = [ln for ln in visible[0].lines if ln.get_marker() == "x"]
        assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [3]
    finally:
        plt.close(fig)


def test_atomic_write_leaves_only_the_report(report):
    path, _ = report
    assert [p.name for p in path.parent.iterdir()] == ["soh_report.html"]


@pytest.mark.parametrize("column", ["k_hat", "converged", "q95", "Cell"])
def test_missing_column_is_named(tmp_path, column):
    assert column in REQUIRED_COLUMNS
    with pytest.raises(ValueError, match=f"'{column}'"):
        _write(tmp_path, _table().drop(columns=column))
    assert list(tmp_path.iterdir()) == []


def test_parameters_only_table_gives_parameter_panels_only():
    table = _table()
    rows = table[(table["Cell"] == ODD) & table["quantity"].str.endswith("_scale")]
    fig = _cell_figure(ODD, rows, set(), [ALARM], 0.8)
    try:
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
        assert titles == ["positive_diffusivity_scale", "negative_j0_scale"]
        # The only alarm is on cell-A's SOH: no panel here may carry it.
        assert not any(ln.get_linestyle() == ":" for ax in fig.axes for ln in ax.lines)
    finally:
        plt.close(fig)
