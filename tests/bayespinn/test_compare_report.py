"""`bayespinn report RUN_A RUN_B`: one offline page, shifts in baseline sds, bad runs rejected."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import arviz as az
import numpy as np
import pytest

from bayespinn.cli import main
from bayespinn.compare_report import compare_runs
from bayespinn.errors import UserError

N_CHAINS, N_DRAWS = 4, 1000
SD = 0.1
STUDY = """
[surrogate]
name = "{model}"

[data]
path = "{data}"

[parameters.k]
prior = "uniform"
lower = 0.0
upper = 3.0

[inference]
engine = "{engine}"

[truth]
k = 1.1
"""


def _run(folder: Path, mean: float, seed: int, engine: str = "nuts", extra: bool = False) -> Path:
    """A run directory as `pipeline._write` lays it out, from normal draws of known mean and sd."""
    rng = np.random.default_rng(seed)
    posterior = {"k": rng.normal(mean, SD, (N_CHAINS, N_DRAWS))}
    if extra:
        posterior["only_here"] = rng.normal(0.0, 1.0, (N_CHAINS, N_DRAWS))
    idata = az.from_dict(posterior=posterior)
    attrs = {"engine": engine, "surrogate": "test.fake", "chains": N_CHAINS, "wall_time_s": 2.5}
    idata.posterior.attrs.update({k: str(v) for k, v in attrs.items()})
    folder.mkdir()
    idata.to_netcdf(str(folder / "posterior.nc"))
    diagnostics = {"converged": True, "max_rhat": 1.001, "warnings": [], "flags": [], "wall_time_s": 2.5}
    (folder / "diagnostics.json").write_text(json.dumps(diagnostics, indent=2) + "\n")
    (folder / "study.toml").write_text(
        STUDY.format(model="test.fake", data=f"{folder.name}.csv", engine=engine)
    )
    return folder


class _Tables(HTMLParser):
    """Rows of cell texts of every ``<table class=...>``, by class."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._current: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._current = self.tables.setdefault(dict(attrs).get("class", ""), [])
        elif tag == "tr" and self._current is not None:
            self._current.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._current is not None:
            self._current[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._current = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(text: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(text)
    return parser.tables


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("compare")
    a = _run(folder / "run_a", 1.0, seed=1)
    b = _run(folder / "run_b", 1.3, seed=2, engine="svi", extra=True)
    out = folder / "comparison.html"
    assert compare_runs([a, b], out) == out
    return out, out.read_text(encoding="utf-8")


def test_page_names_both_runs_and_their_engines(comparison):
    _, text = comparison
    runs = _tables(text)["runs"]
    assert [row[0] for row in runs[1:]] == ["run_a", "run_b"]
    assert [row[2] for row in runs[1:]] == ["nuts", "svi"]
    assert all(row[5] == "yes" for row in runs[1:])


def test_shift_in_baseline_sds_and_sd_ratio(comparison):
    # 4000 draws per run: the shift (1.3 − 1.0)/0.1 = 3 has a sampling sd of about
    # sqrt(2/4000 + 9/(2·4000)) ≈ 0.040, the sd ratio one of about sqrt(1/4000) ≈ 0.016;
    # the tolerances are 5 of those.
    _, text = comparison
    rows = {row[1]: row for row in _tables(text)["differences"][1:] if row[0] == "k"}
    assert float(rows["run_b"][6]) == pytest.approx(3.0, abs=0.2)
    assert float(rows["run_b"][7]) == pytest.approx(1.0, abs=0.08)
    assert float(rows["run_a"][6]) == 0.0
    assert float(rows["run_b"][2]) == pytest.approx(1.3, abs=5 * SD / np.sqrt(N_CHAINS * N_DRAWS))
    # the central 90 % interval of N(1.3, 0.1) is 1.3 ± 0.1645
    assert float(rows["run_b"][4]) == pytest.approx(1.3 - 0.1645, abs=0.02)
    assert float(rows["run_b"][5]) == pytest.approx(1.3 + 0.1645, abs=0.02)


def test_parameter_of_one_run_is_listed_not_compared(comparison):
    _, text = comparison
    tables = _tables(text)
    assert ["only_here", "run_b"] in tables["kv"]
    assert all(row[0] != "only_here" for row in tables["differences"])


def test_page_is_self_contained_with_one_figure_per_shared_parameter(comparison):
    _, text = comparison
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)
    assert len(sources) == 1  # k only
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)\s*=\s*"?https?://', text)
    assert "k: marginal posterior of each run (kernel density); truth dashed." in text


def test_cli_writes_the_comparison(tmp_path, capsys):
    a, b = _run(tmp_path / "a", 1.0, seed=1), _run(tmp_path / "b", 1.3, seed=2)
    out = tmp_path / "cmp.html"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert "<td>a</td>" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("make_bad", [lambda p: p.mkdir(), lambda p: None], ids=["empty dir", "missing"])
def test_cli_rejects_a_directory_that_is_not_a_run(tmp_path, capsys, make_bad):
    good = _run(tmp_path / "good", 1.0, seed=1)
    bad = tmp_path / "not_a_run"
    make_bad(bad)
    out = tmp_path / "cmp.html"
    assert main(["report", str(good), str(bad), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0] and "posterior.nc" in lines[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good", "not_a_run"][: 1 + bad.exists()]


def test_no_run_is_a_user_error(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "cmp.html")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(UserError, match="expected a run directory"):
        compare_runs([], tmp_path / "cmp.html")
    assert list(tmp_path.iterdir()) == []
