"""The finite-volume radial solver against the line source ½·E1(r_D²/(4·t_D)): the second,
independent check of ``wells``' reference, at the well (r_D = 1) and at an image well's distance
(r_D = 100, 1000)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from scipy.special import exp1

from surrogates.reservoir.radial_fv import pressure_d

R_D = np.array([1.0, 100.0, 1000.0])
T_WELL = np.logspace(2, 7, 12)  # r_D = 1
Z_MAX = 5.0  # r_D²/(4·t_D) below which r_D = 100 and 1000 are checked


def _times_far(r_d):
    return np.logspace(np.log10(r_d**2 / (4.0 * Z_MAX)), 7.0, 12)


T_ALL = np.unique(np.concatenate([T_WELL, _times_far(100.0), _times_far(1000.0)]))


def _line_source(r_d, t_d):
    return 0.5 * exp1(np.asarray(r_d)[:, None] ** 2 / (4.0 * np.asarray(t_d)[None, :]))


@pytest.fixture(scope="module")
def solved():
    return pressure_d(R_D, T_ALL)  # default cells = 1600, rtol = 1e-8


def test_shape_is_the_outer_product():
    p = pressure_d(np.array([1.0, 10.0]), np.array([1e3, 1e2, 1e3]), cells=100)
    assert p.shape == (2, 3)
    assert p[0, 0] == p[0, 2] and p[0, 1] < p[0, 0] and np.all(p[1] < p[0])


def test_at_the_well(solved):
    # Measured: 2.5e-6 relative at most (1600 cells).
    p = solved[0, np.searchsorted(T_ALL, T_WELL)]
    ref = _line_source([1.0], T_WELL)[0]
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=0)


@pytest.mark.parametrize("row", [1, 2])
def test_at_an_image_well_distance(solved, row):
    # Measured (1600 cells): 7.7e-5 relative at most where p_D > 1e-3 (here z < 3.7), 9.2e-4
    # relative, 5.3e-7 absolute beyond (z up to 5, p_D down to 5.7e-4).
    r_d = R_D[row]
    t = _times_far(r_d)
    p = solved[row, np.searchsorted(T_ALL, t)]
    ref = _line_source([r_d], t)[0]
    big = ref > 1e-3
    assert big.sum() >= 10
    np.testing.assert_allclose(p[big], ref[big], rtol=2e-4, atol=0)
    np.testing.assert_allclose(p[~big], ref[~big], rtol=0, atol=1e-6)


def test_halving_the_log_spacing_quarters_the_error():
    # Second order in h = Δ ln r_D: a wrong area, flux or boundary would not converge like this.
    r_d = np.array([1.0, 100.0])
    t_d = np.array([1e3, 1e4, 1e5])  # z ≤ 2.5 at r_D = 100
    ref = _line_source(r_d, t_d)
    errors = [np.max(np.abs(pressure_d(r_d, t_d, cells=c) / ref - 1.0)) for c in (100, 200, 400)]
    assert errors[0] > 1e-4  # coarse enough for the discretisation error to dominate
    for coarse, fine in pairwise(errors):
        assert 3.0 < coarse / fine < 5.0, errors


def test_radau_takes_over_when_bdf_meets_a_floating_point_error(monkeypatch):
    # The fallback path, forced: BDF raises as it did once in CI; Radau must meet the same bar.
    import surrogates.reservoir.radial_fv as fv

    integrate = fv._integrate
    methods = []

    def bdf_fails(*args):
        methods.append(args[-1])
        if args[-1] == "BDF":
            raise FloatingPointError("invalid value encountered in subtract")
        return integrate(*args)

    t_d = np.logspace(2, 6, 5)
    by_bdf = fv.pressure_d(np.array([1.0]), t_d, cells=400)
    monkeypatch.setattr(fv, "_integrate", bdf_fails)
    by_radau = fv.pressure_d(np.array([1.0]), t_d, cells=400)
    assert methods == ["BDF", "Radau"]
    # The same semi-discrete system: the two integrators agree far below its 5e-5 grid error.
    np.testing.assert_allclose(by_radau, by_bdf, rtol=1e-6, atol=0)
    np.testing.assert_allclose(by_radau, _line_source([1.0], t_d), rtol=1e-4, atol=0)
