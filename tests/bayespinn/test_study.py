"""Study files: defaults, one error per bad key naming it, σ per observable, paths by the study's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bayespinn.checks import resolve_noise
from bayespinn.data import Measurements
from bayespinn.errors import UserError
from bayespinn.study import load_study
from inference.model import Noise
from inference.priors import Prior

ANGLE = "Angle [rad]"
FREQ = "Frequency deviation [rad.s-1]"

MINIMAL = """\
[surrogate]
name = "power.smib"

[data]
path = "data.csv"

[conditions]
B = 0.2
P = 0.1
delta0 = 0.1
omega0 = 0.1

[parameters.m]
prior = "loguniform"
lower = 0.1
upper = 1.0

[parameters.d]
prior = "uniform"
lower = 0.05
upper = 0.5
"""

M_TABLE = 'prior = "loguniform"\nlower = 0.1\nupper = 1.0'


def _write(folder: Path, text: str, name: str = "study.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _replace(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should occur once"
    return text.replace(old, new)


def test_minimal_study_gets_the_documented_defaults(tmp_path: Path):
    study = load_study(_write(tmp_path, MINIMAL))
    inf = study.inference
    assert (inf.engine, inf.chains, inf.warmup, inf.samples, inf.seed) == ("nuts", 4, 1000, 1000, 0)
    assert (inf.target_accept, inf.likelihood, inf.surrogate_error) == (0.8, "normal", "auto")
    assert study.sigma == "infer" and study.sigma_scale is None
    assert study.observables is None and study.truth == {}
    assert study.output_dir == tmp_path / "runs" / "study"
    assert study.surrogate == "power.smib"
    assert study.conditions == {"B": 0.2, "P": 0.1, "delta0": 0.1, "omega0": 0.1}
    assert study.priors == {"m": Prior("loguniform", 0.1, 1.0), "d": Prior("uniform", 0.05, 0.5)}
    assert study.text == MINIMAL


def test_given_inference_settings_are_read(tmp_path: Path):
    text = MINIMAL + (
        '\n[inference]\nengine = "hmc"\nchains = 2\nwarmup = 30\nsamples = 40\nseed = 7\n'
        'target_accept = 0.9\nlikelihood = "student_t"\nsurrogate_error = "off"\n'
    )
    inf = load_study(_write(tmp_path, text)).inference
    assert (inf.engine, inf.chains, inf.warmup, inf.samples, inf.seed) == ("hmc", 2, 30, 40, 7)
    assert (inf.target_accept, inf.likelihood, inf.surrogate_error) == (0.9, "student_t", "off")


def test_integer_bounds_are_read_as_floats(tmp_path: Path):
    text = _replace(MINIMAL, "lower = 0.05\nupper = 0.5", "lower = 0\nupper = 1")
    prior = load_study(_write(tmp_path, text)).priors["d"]
    assert prior == Prior("uniform", 0.0, 1.0) and isinstance(prior.lower, float)


_INFERENCE = "\n[inference]\n"
BAD = {
    "chains-zero": (MINIMAL + _INFERENCE + "chains = 0\n", "[inference] chains: found 0", "positive integer"),
    "chains-float": (MINIMAL + _INFERENCE + "chains = 2.5\n", "[inference] chains: found 2.5", "integer"),
    "chains-bool": (MINIMAL + _INFERENCE + "chains = true\n", "[inference] chains: found True", "integer"),
    "warmup-negative": (MINIMAL + _INFERENCE + "warmup = -1\n", "[inference] warmup: found -1", "positive"),
    "engine": (MINIMAL + _INFERENCE + 'engine = "foo"\n', "[inference] engine: found 'foo'", "nuts, hmc"),
    "likelihood": (MINIMAL + _INFERENCE + 'likelihood = "cauchy"\n', "[inference] likelihood", "student_t"),
    "surrogate_error": (
        MINIMAL + _INFERENCE + 'surrogate_error = "big"\n',
        "[inference] surrogate_error",
        "auto or correlated or rmse or off",
    ),
    "target_accept": (MINIMAL + _INFERENCE + "target_accept = 1.0\n", "[inference] target_accept", "between"),
    "ensemble-sigma-infer": (
        MINIMAL + _INFERENCE + 'engine = "esmda"\n',
        "[noise] sigma: found 'infer'",
        "need the noise sd known",
    ),
    "pyro-hmc": (
        MINIMAL + _INFERENCE + 'engine = "hmc"\nbackend = "pyro"\n',
        "[inference] backend: found 'pyro'",
        "pyro runs nuts and svi",
    ),
    "schedule-sum": (
        MINIMAL + _INFERENCE + 'engine = "esmda"\nschedule = [2.0, 3.0]\n',
        "[inference] schedule: found [2.0, 3.0]",
        "inverses sum to 1",
    ),
    "schedule-name": (
        MINIMAL + _INFERENCE + 'schedule = "fast"\n',
        "[inference] schedule: found 'fast'",
        "decreasing",
    ),
    "guide": (MINIMAL + _INFERENCE + 'guide = "iaf"\n', "[inference] guide: found 'iaf'", "laplace"),
    "correlated-esmda": (
        MINIMAL + _INFERENCE + 'engine = "esmda"\nsurrogate_error = "correlated"\n',
        "[inference] surrogate_error: found 'correlated'",
        "NumPyro engine and a normal likelihood",
    ),
    "svi-steps": (MINIMAL + _INFERENCE + "svi_steps = 0\n", "[inference] svi_steps: found 0", "positive"),
    "learning-rate": (MINIMAL + _INFERENCE + "learning_rate = -1\n", "[inference] learning_rate", "positive"),
    "loguniform-lower-zero": (
        _replace(MINIMAL, M_TABLE, 'prior = "loguniform"\nlower = 0.0\nupper = 1.0'),
        "[parameters.m] lower: found 0.0",
        "positive",
    ),
    "upper-equal-lower": (
        _replace(MINIMAL, M_TABLE, 'prior = "loguniform"\nlower = 0.5\nupper = 0.5'),
        "[parameters.m] upper: found 0.5",
        "above lower = 0.5",
    ),
    "upper-below-lower": (
        _replace(MINIMAL, M_TABLE, 'prior = "uniform"\nlower = 0.5\nupper = 0.2'),
        "[parameters.m] upper: found 0.2",
        "above lower = 0.5",
    ),
    "prior-kind": (
        _replace(MINIMAL, M_TABLE, 'prior = "gamma"\nlower = 0.1\nupper = 1.0'),
        "[parameters.m] prior: found 'gamma'",
        "loguniform",
    ),
    "prior-missing": (
        _replace(MINIMAL, M_TABLE, "lower = 0.1\nupper = 1.0"),
        "[parameters.m] prior: missing",
        "uniform",
    ),
    "prior-key": (
        _replace(MINIMAL, M_TABLE, M_TABLE + "\nlowr = 0.2"),
        "[parameters.m] lowr",
        "lower, upper",
    ),
    "bound-missing": (
        _replace(MINIMAL, M_TABLE, 'prior = "uniform"\nlower = 0.1'),
        "[parameters.m] upper: missing",
        "number",
    ),
    "normal-scale": (
        _replace(MINIMAL, M_TABLE, 'prior = "normal"\nloc = 0.4\nscale = 0.0'),
        "[parameters.m] scale: found 0.0",
        "positive",
    ),
    "parameter-not-table": (
        _replace(MINIMAL, f"[parameters.m]\n{M_TABLE}", "[parameters]\nm = 0.4"),
        "[parameters.m]: found 0.4",
        "a table",
    ),
    "no-parameters": (MINIMAL.split("[parameters.m]")[0], "[parameters]: missing", "[parameters.NAME]"),
    "unknown-section": (MINIMAL + "\n[foo]\nx = 1\n", "[foo]: unknown section", "inference"),
    "surrogate-name-missing": (
        _replace(MINIMAL, 'name = "power.smib"', ""),
        "[surrogate] name: missing",
        "registry name",
    ),
    "surrogate-name-misspelt": (
        _replace(MINIMAL, 'name = "power.smib"', 'nam = "power.smib"'),
        "[surrogate] nam: unknown key",
        "expected one of name",
    ),
    "data-path-missing": (_replace(MINIMAL, 'path = "data.csv"', ""), "[data] path: missing", "CSV"),
    "data-path-misspelt": (
        _replace(MINIMAL, 'path = "data.csv"', 'file = "data.csv"'),
        "[data] file: unknown key",
        "observables, path",
    ),
    "observables-not-strings": (
        _replace(MINIMAL, 'path = "data.csv"', 'path = "data.csv"\nobservables = [1]'),
        "[data] observables: found [1]",
        "column names",
    ),
    "condition-string": (
        _replace(MINIMAL, "B = 0.2", 'B = "big"'),
        "[conditions] B: found 'big'",
        "a number",
    ),
    "condition-nan": (_replace(MINIMAL, "B = 0.2", "B = nan"), "[conditions] B: found nan", "finite"),
    "sigma-negative": (MINIMAL + "\n[noise]\nsigma = -0.1\n", "[noise] sigma: found -0.1", "positive"),
    "sigma-string": (MINIMAL + '\n[noise]\nsigma = "guess"\n', "[noise] sigma: found 'guess'", '"infer"'),
    "sigma-bool": (MINIMAL + "\n[noise]\nsigma = true\n", "[noise] sigma: found True", '"infer"'),
    "sigma-table-bool": (
        MINIMAL + '\n[noise]\nsigma = {"Angle [rad]" = true}\n',
        '[noise] sigma."Angle [rad]": found True',
        "positive",
    ),
    "sigma-table-inf": (
        MINIMAL + '\n[noise]\nsigma = {"Angle [rad]" = inf}\n',
        '[noise] sigma."Angle [rad]": found inf',
        "positive",
    ),
    "scale-zero": (MINIMAL + "\n[noise]\nscale = 0.0\n", "[noise] scale: found 0.0", "positive"),
    "scale-table-negative": (
        MINIMAL + '\n[noise]\nscale = {"Angle [rad]" = -1.0}\n',
        '[noise] scale."Angle [rad]": found -1.0',
        "positive",
    ),
    "output-dir": (MINIMAL + "\n[output]\ndir = 3\n", "[output] dir: found 3", "a path"),
}


@pytest.mark.parametrize("text, names, expects", BAD.values(), ids=BAD.keys())
def test_each_bad_key_is_named(tmp_path: Path, text: str, names: str, expects: str):
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_study(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert names in message and expects in message
    assert "\n" not in message


def test_malformed_toml_names_the_line(tmp_path: Path):
    path = _write(tmp_path, MINIMAL + "\n[inference]\nchains = = 2\n")
    line = path.read_text().splitlines().index("chains = = 2") + 1
    with pytest.raises(UserError, match=rf"malformed TOML: .*\(at line {line}, column"):
        load_study(path)


def test_missing_study_file(tmp_path: Path):
    with pytest.raises(UserError, match="study file not found"):
        load_study(tmp_path / "absent.toml")


def _measurements(tmp_path: Path) -> Measurements:
    t = np.linspace(0.0, 1.0, 5)
    return Measurements(
        tmp_path / "data.csv",
        t,
        {ANGLE: np.array([0.0, 1.0, 2.0, 3.0, 4.0]), FREQ: np.array([1.0, 1.0, 1.0, 1.0, 5.0])},
    )


def test_sigma_as_a_table_per_observable(tmp_path: Path):
    text = (
        MINIMAL
        + f'\n[noise]\nsigma = {{"{ANGLE}" = 0.005, "{FREQ}" = "infer"}}\nscale = {{"{FREQ}" = 0.02}}\n'
    )
    study = load_study(_write(tmp_path, text))
    assert study.sigma == {ANGLE: 0.005, FREQ: "infer"}
    noise = resolve_noise(study, _measurements(tmp_path))
    assert noise[ANGLE].sigma == 0.005
    assert noise[FREQ] == Noise(sigma=None, scale=0.02)


def test_inferred_sigma_scale_defaults_to_the_data_sd(tmp_path: Path):
    study = load_study(_write(tmp_path, MINIMAL))
    noise = resolve_noise(study, _measurements(tmp_path))
    assert noise[ANGLE] == Noise(sigma=None, scale=pytest.approx(np.sqrt(2.0)))  # sd of 0..4
    assert noise[FREQ] == Noise(sigma=None, scale=pytest.approx(1.6))  # sd of 1,1,1,1,5


def test_sigma_table_without_an_observable_is_named(tmp_path: Path):
    study = load_study(_write(tmp_path, MINIMAL + f'\n[noise]\nsigma = {{"{ANGLE}" = 0.005}}\n'))
    with pytest.raises(UserError) as err:
        resolve_noise(study, _measurements(tmp_path))
    assert f"[noise] sigma: no entry for '{FREQ}'" in str(err.value)


def test_scale_table_only_needs_the_inferred_observables(tmp_path: Path):
    text = (
        MINIMAL
        + f'\n[noise]\nsigma = {{"{ANGLE}" = "infer", "{FREQ}" = 0.01}}\nscale = {{"{ANGLE}" = 0.3}}\n'
    )
    noise = resolve_noise(load_study(_write(tmp_path, text)), _measurements(tmp_path))
    assert noise[ANGLE] == Noise(sigma=None, scale=0.3)
    assert noise[FREQ].sigma == 0.01
    text = _replace(text, f'"{FREQ}" = 0.01', f'"{FREQ}" = "infer"')
    with pytest.raises(UserError) as err:
        resolve_noise(load_study(_write(tmp_path, text)), _measurements(tmp_path))
    assert f"[noise] scale: no entry for '{FREQ}'" in str(err.value)


def test_relative_paths_follow_the_study_folder(tmp_path: Path, monkeypatch):
    text = _replace(MINIMAL, 'path = "data.csv"', 'path = "measurements/cell1.csv"')
    _write(tmp_path / "studies" / "smib", text + '\n[output]\ndir = "../runs/one"\n')
    monkeypatch.chdir(tmp_path / "studies")  # a working directory that is neither the study's nor its parent
    study = load_study("smib/study.toml")
    assert study.data_path.resolve() == tmp_path / "studies" / "smib" / "measurements" / "cell1.csv"
    assert study.output_dir.resolve() == tmp_path / "studies" / "runs" / "one"


def test_absolute_paths_are_kept(tmp_path: Path):
    data = tmp_path / "elsewhere" / "d.csv"
    out = tmp_path / "out" / "run"
    text = _replace(MINIMAL, 'path = "data.csv"', f'path = "{data.as_posix()}"')
    study = load_study(_write(tmp_path / "s", text + f'\n[output]\ndir = "{out.as_posix()}"\n'))
    assert study.data_path == data and study.output_dir == out


def test_unknown_key_in_a_section_is_rejected(tmp_path):
    from bayespinn.errors import UserError
    from bayespinn.study import parse_study

    text = (
        '[surrogate]\nname = "power.smib"\n[data]\npath = "x.csv"\n[parameters.m]\nprior = "uniform"\n'
        "lower = 0.1\nupper = 1.0\n[inference]\nchians = 2\n"
    )
    with pytest.raises(UserError, match=r"\[inference\] chians: unknown key"):
        parse_study(tmp_path / "s.toml", text)
