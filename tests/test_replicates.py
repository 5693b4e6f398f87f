"""Replicate weights from design variables, and replicate variances.

Property-based tests (hypothesis) over random numbers of strata, PSUs and rows check the structure
of each method's replicates and, for totals, the textbook with-replacement variance that R's
``survey`` package reproduces with the same designs (``svytotal`` on ``as.svrepdesign``):
``sum_h (t_h1 - t_h2)^2`` for Fay/BRR and JK2, ``sum_h n_h / (n_h - 1) sum_i (t_hi - tbar_h)^2``
for JKn/JK1. Small means are computed by hand. The shipped PISA-like W_FSTR columns are rebuilt
from VARSTRAT/VARUNIT.

The bad-input rows of docs/errors.md ("Replicate weights and variances") are run in ``ERRORS``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wemix_nb
from wemix_nb import errors as E
from wemix_nb.survey.hadamard import hadamard, is_available, paley, smallest_order, sylvester
from wemix_nb.survey.replicates import ReplicateWeights, replicate_variance, replicate_weights

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
SETTINGS = settings(max_examples=40, deadline=None, database=None)
weights_st = st.floats(0.1, 100.0, allow_nan=False, allow_infinity=False)


# ------------------------------------------------------------------------------------------------
# random designs


@st.composite
def stratified(draw, min_strata=1, max_strata=12, psus=(2, 2), nest=False):
    """A shuffled frame with strata 'S', PSUs 'P' (labels restarting within strata if nest), 'w', 'y'."""
    H = draw(st.integers(min_strata, max_strata))
    n_h = draw(st.lists(st.integers(*psus), min_size=H, max_size=H))
    U = sum(n_h)
    rows = draw(st.lists(st.integers(1, 3), min_size=U, max_size=U))
    labels = draw(st.lists(st.integers(-1000, 1000), min_size=H, max_size=H, unique=True))
    unit_stratum = np.repeat(np.array(labels), n_h)
    unit_psu = np.concatenate([np.arange(1, n + 1) for n in n_h]) if nest else np.arange(100, 100 + U)
    row_unit = np.repeat(np.arange(U), rows)
    n = len(row_unit)
    order = np.array(draw(st.permutations(range(n))))
    w = np.array(draw(st.lists(weights_st, min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=n, max_size=n)))
    unit = row_unit[order]
    return pd.DataFrame({"S": unit_stratum[unit], "P": unit_psu[unit], "w": w, "y": y, "unit": unit})


@st.composite
def zoned(draw, max_zones=15):
    """A shuffled TIMSS-like frame: zones 'Z', halves 'H' (0/1, both in every zone), 'w', 'y'."""
    Z = draw(st.integers(2, max_zones))
    rows = draw(st.lists(st.integers(1, 3), min_size=2 * Z, max_size=2 * Z))
    cell = np.repeat(np.arange(2 * Z), rows)
    n = len(cell)
    w = np.array(draw(st.lists(weights_st, min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=n, max_size=n)))
    order = np.array(draw(st.permutations(range(n))))
    return pd.DataFrame({"Z": cell[order] // 2 + 1, "H": cell[order] % 2, "w": w, "y": y})


def factors(rw: ReplicateWeights, data: pd.DataFrame) -> np.ndarray:
    return rw.weights.to_numpy() / data["w"].to_numpy()[:, None]


def replicate_totals(rw: ReplicateWeights, data: pd.DataFrame) -> tuple[np.ndarray, float]:
    return rw.weights.to_numpy().T @ data["y"].to_numpy(), float(data["w"] @ data["y"])


def unit_totals(data: pd.DataFrame, by: list[str]) -> pd.Series:
    return (data["w"] * data["y"]).groupby([data[c] for c in by]).sum()


def textbook_total_variance(data: pd.DataFrame, strata: str | None, psu: str) -> float:
    """sum_h n_h / (n_h - 1) sum_i (t_hi - tbar_h)^2, the with-replacement variance of a total."""
    t = unit_totals(data.assign(_s=0 if strata is None else data[strata]), ["_s", psu])
    by_stratum = t.groupby(level=0)
    n_h = by_stratum.transform("size")
    return float((n_h / (n_h - 1) * (t - by_stratum.transform("mean")) ** 2).sum())


# ------------------------------------------------------------------------------------------------
# Hadamard matrices


@pytest.mark.parametrize("order", [n for n in range(1, 257) if is_available(n)])
def test_hadamard_rows_and_columns_orthogonal(order):
    H = hadamard(order).astype(int)
    assert set(np.unique(H)) <= {-1, 1}
    np.testing.assert_array_equal(H @ H.T, order * np.eye(order, dtype=int))
    np.testing.assert_array_equal(H.T @ H, order * np.eye(order, dtype=int))


def test_hadamard_constructions():
    assert is_available(80) and is_available(40) and is_available(64)
    assert not is_available(28) and not is_available(76) and not is_available(30)
    assert smallest_order(75) == 80 and smallest_order(76) == 80 and smallest_order(1) == 2
    np.testing.assert_array_equal(hadamard(8), sylvester(8))
    np.testing.assert_array_equal(hadamard(80), paley(79))
    np.testing.assert_array_equal(hadamard(40), np.kron(sylvester(2), paley(19)))
    P = paley(79).astype(int)
    assert (P[0] == 1).all() and (P[1:, 0] == -1).all()
    # Q[i, j] = chi(j - i): 1 and 2 are squares mod 79, 3 is not
    assert P[1, 2] == 1 and P[1, 3] == 1 and P[1, 4] == -1
    with pytest.raises(E.ArgumentError, match="order 28.*next available order is 32"):
        hadamard(28)


# ------------------------------------------------------------------------------------------------
# Fay / BRR


@SETTINGS
@given(data=stratified(max_strata=20, nest=True), k=st.sampled_from([0.0, 0.3, 0.5, 0.75]))
def test_fay_factors_balance_orthogonality(data, k):
    rw = replicate_weights(data, "w", "fay", strata="S", psu="P", nest=True, fay_k=k)
    H, R = data["S"].nunique(), rw.n_replicates
    assert R == smallest_order(H) and R >= H
    W, w = rw.weights.to_numpy(), data["w"].to_numpy()[:, None]
    up, down = W == w * (2 - k), W == w * k
    assert (up | down).all()  # exactly 2 - k or k (1.5 / 0.5 at k = 0.5)
    # constant within PSU; one PSU up and the other down in every stratum and replicate
    first = (data["P"] == 1).to_numpy()
    unit_up = pd.DataFrame(up).groupby(data["unit"].to_numpy()).agg(["min", "max"])
    assert (unit_up.xs("min", axis=1, level=1) == unit_up.xs("max", axis=1, level=1)).all().all()
    sign = pd.DataFrame(np.where(up, 1, -1) * np.where(first, 1, -1)[:, None]).groupby(data["S"].to_numpy())
    assert (sign.min() == sign.max()).all().all()  # the first PSU's sign is the stratum's pattern
    pattern = sign.first().to_numpy()
    np.testing.assert_array_equal(pattern @ pattern.T, R * np.eye(H))  # orthogonal across strata
    assert rw.fay_k == k and np.allclose(rw.multipliers, 1 / (R * (1 - k) ** 2))


@SETTINGS
@given(data=stratified(max_strata=20, nest=False), k=st.sampled_from([0.0, 0.5, 0.9]))
def test_fay_total_variance_is_paired_difference(data, k):
    method = "brr" if k == 0 else "fay"
    rw = replicate_weights(data, "w", method, strata="S", psu="P", fay_k=k or None)
    estimates, full = replicate_totals(rw, data)
    d = unit_totals(data, ["S", "P"]).groupby(level=0).agg(lambda t: t.iloc[0] - t.iloc[1])
    expected = float((d**2).sum())
    assert rw.variance(estimates, full) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert replicate_variance(estimates, full, method, fay_k=k or None) == pytest.approx(
        expected, rel=1e-9, abs=1e-9
    )


def test_brr_is_fay_with_k_zero():
    data = pd.DataFrame({"S": [1, 1, 2, 2, 3, 3], "P": [1, 2, 3, 4, 5, 6], "w": [1.0, 2, 3, 4, 5, 6]})
    brr = replicate_weights(data, "w", "brr", strata="S", psu="P")
    fay0 = replicate_weights(data, "w", "fay", strata="S", psu="P", fay_k=0)
    pd.testing.assert_frame_equal(brr.weights, fay0.weights)
    assert set(np.unique(brr.weights.to_numpy() / data[["w"]].to_numpy())) == {0.0, 2.0}
    assert brr.method == "brr" and brr.fay_k == 0 and brr.multipliers[0] == 1 / brr.n_replicates


def test_fay_n_replicates_and_column_zero():
    data = pd.DataFrame({"S": np.repeat([1, 2, 3, 4], 2), "P": np.tile([1, 2], 4), "w": 1.0})
    rw = replicate_weights(data, "w", "brr", strata="S", psu="P", nest=True)
    assert rw.n_replicates == 4  # 4 strata: columns 1, 2, 3 and 0 of Sylvester's H_4
    assert (rw.weights.iloc[6].to_numpy() == 2).all()  # stratum 4, first PSU: column 0 is all ones
    rw8 = replicate_weights(data, "w", "brr", strata="S", psu="P", nest=True, n_replicates=8, prefix="W")
    assert rw8.columns == [f"W{r}" for r in range(1, 9)]
    assert (rw8.weights.iloc[::2].sum(axis=1) == 8).all()  # columns 1-4 of H_8: full balance


def test_brr_and_fay_means_by_hand():
    # strata a (y 1, 3) and b (y 2, 6), one row per PSU, weights 1; R = 2 (Sylvester H_2):
    # stratum a uses column 1 = (1, -1), stratum b column 0 = (1, 1).
    data = pd.DataFrame({"S": ["a", "a", "b", "b"], "P": [1, 2, 3, 4], "w": 1.0, "y": [1.0, 3.0, 2.0, 6.0]})

    def means(rw):
        W = rw.weights.to_numpy()
        return W.T @ data["y"].to_numpy() / W.sum(axis=0)

    brr = replicate_weights(data, "w", "brr", strata="S", psu="P")
    # replicate 1 doubles y = 1 and y = 2: mean 6/4 = 1.5; replicate 2 doubles y = 3 and y = 2: 10/4 = 2.5
    np.testing.assert_allclose(means(brr), [1.5, 2.5])
    assert brr.variance(means(brr), 3.0) == pytest.approx(((1.5 - 3) ** 2 + (2.5 - 3) ** 2) / 2)  # 1.25
    fay = replicate_weights(data, "w", "fay", strata="S", psu="P")
    # replicate 1: (1.5*1 + 0.5*3 + 1.5*2 + 0.5*6) / 4 = 2.25; replicate 2: (0.5 + 4.5 + 3 + 3) / 4 = 2.75
    np.testing.assert_allclose(means(fay), [2.25, 2.75])
    assert fay.variance(means(fay), 3.0) == pytest.approx((0.75**2 + 0.25**2) / (2 * 0.5**2))  # 1.25


# ------------------------------------------------------------------------------------------------
# jackknives


@SETTINGS
@given(data=zoned(), both=st.booleans())
def test_jk2_zeroes_one_half_and_doubles_the_other(data, both):
    rw = replicate_weights(data, "w", "jk2", zone="Z", rep="H", both_halves=both)
    Z = data["Z"].nunique()
    assert rw.n_replicates == (2 * Z if both else Z)
    F = factors(rw, data)
    for r in range(rw.n_replicates):
        zone, second = r % Z + 1, r >= Z
        in_zone = (data["Z"] == zone).to_numpy()
        doubled = in_zone & (data["H"] == (0 if second else 1)).to_numpy()
        np.testing.assert_array_equal(F[:, r], np.where(doubled, 2.0, np.where(in_zone, 0.0, 1.0)))
    np.testing.assert_array_equal(rw.strata, np.tile(np.arange(1, Z + 1), 2 if both else 1))
    assert np.all(rw.multipliers == (0.5 if both else 1.0))
    estimates, full = replicate_totals(rw, data)
    d = unit_totals(data, ["Z", "H"]).unstack()
    assert rw.variance(estimates, full) == pytest.approx(
        float(((d[1] - d[0]) ** 2).sum()), rel=1e-9, abs=1e-9
    )


def test_jk2_mean_by_hand():
    # zone 1: y 4 (rep 1), 2 (rep 0); zone 2: y 1 (rep 1), 5 (rep 0); weights 1, full mean 3
    data = pd.DataFrame({"Z": [1, 1, 2, 2], "H": [1, 0, 1, 0], "w": 1.0, "y": [4.0, 2.0, 1.0, 5.0]})
    one = replicate_weights(data, "w", "jk2", zone="Z", rep="H")
    W = one.weights.to_numpy()
    means = W.T @ data["y"].to_numpy() / W.sum(axis=0)
    np.testing.assert_allclose(means, [14 / 4, 8 / 4])  # weights (2, 0, 1, 1) and (1, 1, 2, 0)
    assert one.variance(means, 3.0) == pytest.approx(0.5**2 + 1.0**2)
    both = replicate_weights(data, "w", "jk2", zone="Z", rep="H", both_halves=True)
    W = both.weights.to_numpy()
    means = W.T @ data["y"].to_numpy() / W.sum(axis=0)
    np.testing.assert_allclose(means, [3.5, 2.0, 10 / 4, 16 / 4])
    assert both.variance(means, 3.0) == pytest.approx((0.25 + 1 + 0.25 + 1) / 2)


@SETTINGS
@given(data=stratified(max_strata=6, psus=(2, 5)))
def test_jkn_multipliers_and_total_variance(data):
    rw = replicate_weights(data, "w", "jkn", strata="S", psu="P")
    psus = data.groupby("P")["S"].first().sort_index()
    order = psus.reset_index().sort_values(["S", "P"])  # replicates: by stratum, then PSU
    assert rw.n_replicates == len(psus)
    n_h = data.groupby("S")["P"].nunique()
    np.testing.assert_array_equal(rw.strata, order["S"].to_numpy())
    np.testing.assert_allclose(rw.multipliers, ((n_h - 1) / n_h)[order["S"]].to_numpy())
    F = factors(rw, data)
    for r, (deleted, stratum) in enumerate(zip(order["P"], order["S"], strict=True)):
        in_stratum = (data["S"] == stratum).to_numpy()
        expected = np.where(in_stratum, n_h[stratum] / (n_h[stratum] - 1), 1.0)
        np.testing.assert_allclose(F[:, r], np.where(data["P"] == deleted, 0.0, expected), rtol=1e-12)
    estimates, full = replicate_totals(rw, data)
    expected = textbook_total_variance(data, "S", "P")
    assert rw.variance(estimates, full) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@SETTINGS
@given(data=stratified(max_strata=1, psus=(2, 9)))
def test_jk1_multipliers_and_total_variance(data):
    rw = replicate_weights(data, "w", "jk1", psu="P")
    n = data["P"].nunique()
    assert rw.n_replicates == n and np.allclose(rw.multipliers, (n - 1) / n)
    F = factors(rw, data)
    deleted = np.sort(data["P"].unique())
    np.testing.assert_allclose(F, np.where(data["P"].to_numpy()[:, None] == deleted, 0.0, n / (n - 1)))
    estimates, full = replicate_totals(rw, data)
    assert rw.variance(estimates, full) == pytest.approx(textbook_total_variance(data, None, "P"), rel=1e-9)


def test_jk1_mean_by_hand_is_s2_over_n():
    data = pd.DataFrame({"w": 1.0, "y": [1.0, 2.0, 6.0]})  # every row a PSU
    rw = replicate_weights(data, "w", "jk1")
    W = rw.weights.to_numpy()
    means = W.T @ data["y"].to_numpy() / W.sum(axis=0)
    np.testing.assert_allclose(means, [4.0, 3.5, 1.5])
    # (2/3) (1 + 0.25 + 2.25) = 7/3 = s^2 / n with s^2 = (4 + 1 + 9) / 2
    assert rw.variance(means, 3.0) == pytest.approx(7 / 3)


# ------------------------------------------------------------------------------------------------
# bootstrap


@SETTINGS
@given(data=stratified(max_strata=5, psus=(2, 6)), seed=st.integers(0, 2**32 - 1))
def test_bootstrap_reproducible_and_rescaled(data, seed):
    rw = replicate_weights(data, "w", "bootstrap", strata="S", psu="P", n_replicates=3000, seed=seed)
    again = replicate_weights(data, "w", "bootstrap", strata="S", psu="P", n_replicates=3000, seed=seed)
    np.testing.assert_array_equal(rw.weights.to_numpy(), again.weights.to_numpy())
    F, unit = factors(rw, data), data["unit"].to_numpy()
    _, first = np.unique(unit, return_index=True)
    np.testing.assert_allclose(F, F[first][unit], rtol=1e-12)  # constant within PSU
    F = F[first]  # one row per PSU
    stratum = pd.factorize(data["S"].to_numpy()[first])[0]
    n_h = np.bincount(stratum)
    draws = F * ((n_h - 1) / n_h)[stratum][:, None]
    np.testing.assert_allclose(draws, np.round(draws), atol=1e-9)  # whole numbers of draws
    # the factors of a stratum add up to n_h in every replicate
    sums = (stratum[None, :] == np.arange(len(n_h))[:, None]).astype(float) @ F
    np.testing.assert_allclose(sums, np.repeat(n_h[:, None], F.shape[1], axis=1))
    # each factor has mean 1 and variance 1 over replicates: 3000 replicates, SD of the mean 0.018
    assert np.abs(F.mean(axis=1) - 1).max() < 0.1
    assert rw.multipliers[0] == pytest.approx(1 / 2999)


def test_bootstrap_seed_changes_replicates_and_expected_variance():
    rng = np.random.default_rng(7)
    data = pd.DataFrame(
        {"S": np.repeat([1, 2, 3], [6, 9, 12]), "P": np.arange(27), "w": rng.uniform(1, 3, 27)}
    )
    data["y"] = rng.normal(10, 4, 27)
    a = replicate_weights(data, "w", "bootstrap", strata="S", psu="P", n_replicates=20000, seed=1)
    b = replicate_weights(data, "w", "bootstrap", strata="S", psu="P", n_replicates=20000, seed=2)
    assert not a.weights.equals(b.weights)
    # Rao-Wu with n_h - 1 draws: E*[(t* - t)^2] is the textbook variance of a total (mse centring)
    estimates, full = replicate_totals(a, data)
    expected = textbook_total_variance(data, "S", "P")
    assert a.variance(estimates, full) == pytest.approx(expected, rel=0.05)


# ------------------------------------------------------------------------------------------------
# replicate_variance


def test_default_multipliers():
    est, full = [11.0, 9.0, 12.0, 8.0], 10.0  # squared deviations sum to 10
    assert replicate_variance(est, full, "brr") == pytest.approx(10 / 4)
    assert replicate_variance(est, full, "fay") == pytest.approx(10 / (4 * 0.25))
    assert replicate_variance(est, full, "fay", fay_k=0.3) == pytest.approx(10 / (4 * 0.49))
    assert replicate_variance(est, full, "jk1") == pytest.approx(10 * 3 / 4)
    assert replicate_variance(est, full, "jk2") == pytest.approx(10)
    assert replicate_variance(est, full, "jk2", both_halves=True) == pytest.approx(5)
    assert replicate_variance(est, full, "bootstrap") == pytest.approx(10 / 3)
    assert replicate_variance(est, full, "jkn", rscales=[0.5, 0.5, 2 / 3, 2 / 3]) == pytest.approx(
        0.5 * 2 + 2 / 3 * 8
    )


def test_scale_and_rscales_override_like_survey():
    est, full = np.array([11.0, 9.0, 12.0, 8.0]), 10.0
    assert replicate_variance(est, full, "brr", scale=1.0) == pytest.approx(10)
    assert replicate_variance(est, full, "brr", rscales=[1, 1, 0, 0]) == pytest.approx(2 / 4)
    assert replicate_variance(est, full, scale=2.0, rscales=[1, 0, 1, 0]) == pytest.approx(2 * (1 + 4))
    assert replicate_variance(est, full, scale=0.1) == pytest.approx(1.0)


def test_mse_false_centres_on_replicate_mean():
    est = [1.0, 2.0, 3.0, 6.0]
    assert replicate_variance(est, 0.0, "brr") == pytest.approx((1 + 4 + 9 + 36) / 4)
    assert replicate_variance(est, 0.0, "brr", mse=False) == pytest.approx((4 + 1 + 0 + 9) / 4)


@SETTINGS
@given(
    est=st.lists(st.tuples(*[st.floats(-1e3, 1e3, allow_nan=False)] * 3), min_size=2, max_size=30),
    mse=st.booleans(),
)
def test_vector_estimates_give_covariance(est, mse):
    theta = np.array(est)
    full = theta.mean(axis=0) + 1.0
    cov = replicate_variance(theta, full, "jk1", mse=mse)
    assert cov.shape == (3, 3)
    np.testing.assert_allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() >= -1e-8 * max(1.0, np.abs(cov).max())
    for j in range(3):
        assert cov[j, j] == pytest.approx(
            replicate_variance(theta[:, j], full[j], "jk1", mse=mse), rel=1e-12, abs=1e-12
        )
    df = pd.DataFrame(theta, columns=list("abc"))
    np.testing.assert_allclose(replicate_variance(df, full, "jk1", mse=mse), cov)


def test_replicate_weights_object_as_method():
    data = wemix_nb.datasets.pisa2012_like(design=True)
    rw = replicate_weights(data, "w_fstuwt", "fay", strata="VARSTRAT", psu="VARUNIT", nest=True)
    est = np.linspace(0, 1, 80)
    assert replicate_variance(est, 0.4, rw) == pytest.approx(replicate_variance(est, 0.4, "fay", fay_k=0.5))
    assert rw.variance(est, 0.4, scale=1.0) == pytest.approx(float(((est - 0.4) ** 2).sum()))
    assert "method='fay'" in repr(rw) and "R=80" in repr(rw)
    with pytest.raises(E.ArgumentError, match="80"):
        rw.variance(est[:10], 0.4)


# ------------------------------------------------------------------------------------------------
# the shipped PISA-like design


@pytest.fixture(scope="module")
def pisa():
    return wemix_nb.datasets.pisa2012_like(design=True)


def test_pisa_design_columns(pisa):
    plain = wemix_nb.datasets.pisa2012_like()
    assert len(pisa) == len(plain) == 5057 and pisa.shape[1] == plain.shape[1] + 87
    pd.testing.assert_frame_equal(pisa[plain.columns], plain)
    assert {f"PV{i}MATH" for i in range(1, 6)} | {"VARSTRAT", "VARUNIT", "W_FSTR80"} <= set(pisa)
    assert pisa["VARSTRAT"].nunique() == 75 and set(pisa["VARUNIT"]) == {1, 2}


def test_pisa_fay_weights_rebuilt_exactly(pisa):
    rw = replicate_weights(
        pisa, "w_fstuwt", "fay", strata="VARSTRAT", psu="VARUNIT", nest=True, prefix="W_FSTR"
    )
    shipped = pisa.filter(regex=r"^W_FSTR\d+$")
    assert rw.columns == list(shipped.columns) and rw.n_replicates == 80
    # the same replicate (1.5 or 0.5) for every row, and the same weights up to the CSV's rounding
    ratio = shipped.to_numpy() / pisa[["w_fstuwt"]].to_numpy()
    np.testing.assert_array_equal(
        np.sign(ratio - 1), np.sign(rw.weights.to_numpy() / pisa[["w_fstuwt"]].to_numpy() - 1)
    )
    np.testing.assert_allclose(rw.weights.to_numpy(), shipped.to_numpy(), rtol=1e-12)
    assert rw.multipliers[0] == pytest.approx(1 / 20)


def test_pisa_shipped_columns_structure(pisa):
    """The structural properties hold on the shipped columns themselves (independent of our builder)."""
    ratio = pisa.filter(regex=r"^W_FSTR\d+$").to_numpy() / pisa[["w_fstuwt"]].to_numpy()
    assert np.isclose(ratio, 1.5).sum() + np.isclose(ratio, 0.5).sum() == ratio.size
    up = pd.DataFrame(np.isclose(ratio, 1.5))
    by_school = up.groupby(pisa["schoolid"].to_numpy())
    assert (by_school.min() == by_school.max()).all().all()  # constant within school
    assert (pisa.groupby("schoolid")[["VARSTRAT", "VARUNIT"]].nunique() == 1).all().all()
    unit = up.groupby([pisa["VARSTRAT"].to_numpy(), pisa["VARUNIT"].to_numpy()]).first().astype(int)
    assert (unit.groupby(level=0).sum() == 1).all().all()  # one unit up, one down, every replicate
    pattern = 2 * unit.xs(1, level=1).to_numpy() - 1
    np.testing.assert_array_equal(pattern @ pattern.T, 80 * np.eye(75))  # orthogonal across strata


def test_pisa_variance_of_mean(pisa):
    rw = replicate_weights(pisa, "w_fstuwt", "fay", strata="VARSTRAT", psu="VARUNIT", nest=True)
    W, y = rw.weights.to_numpy(), pisa["PV1MATH"].to_numpy()
    estimates = W.T @ y / W.sum(axis=0)
    full = float(np.average(y, weights=pisa["w_fstuwt"]))
    shipped = pisa.filter(regex=r"^W_FSTR\d+$").to_numpy()
    by_hand = float(((shipped.T @ y / shipped.sum(axis=0) - full) ** 2).sum() / 20)
    assert rw.variance(estimates, full) == pytest.approx(by_hand, rel=1e-10)


def test_apiclus2():
    api = wemix_nb.datasets.apiclus2()
    assert api.shape == (126, 18) and api["dnum"].nunique() == 40
    assert list(api["stype"].cat.categories) == ["E", "M", "H"]
    assert api["cds"].map(type).eq(str).all() and api["enroll"].isna().sum() == 6
    np.testing.assert_allclose(api["w1"], api["pw"])
    np.testing.assert_allclose(api["w2"], 757 / 40)
    np.testing.assert_allclose(api["w1c"], api["fpc2"] / api["n_i"])
    np.testing.assert_allclose(api["w1"], api["w1c"] * api["w2"])


def test_exported():
    assert wemix_nb.replicate_weights is replicate_weights
    assert wemix_nb.replicate_variance is replicate_variance
    assert {"replicate_weights", "replicate_variance", "ReplicateWeights"} <= set(wemix_nb.__all__)


# ------------------------------------------------------------------------------------------------
# bad inputs (docs/errors.md, "Replicate weights and variances")


def toy() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "w": [1.0, 2, 3, 4, 5, 6, 7, 8],
            "S": [1, 1, 2, 2, 3, 3, 4, 4],
            "P": [1, 2, 1, 2, 1, 2, 1, 2],
            "school": [10, 11, 12, 13, 14, 15, 16, 17],
            "Z": [1, 1, 2, 2, 3, 3, 4, 4],
            "R": [1, 0, 1, 0, 1, 0, 1, 0],
        }
    )


def at(column: str, row: int, value) -> pd.DataFrame:
    d = toy()
    d[column] = d[column].astype(object if isinstance(value, str) else float)
    d.loc[row, column] = value
    return d


FAY = {"strata": "S", "psu": "P", "nest": True}
EST = [11.0, 9.0, 12.0, 8.0]

ERRORS = {
    "replicates-data-not-a-dataframe": (
        lambda: replicate_weights({"w": [1.0]}, "w", "jk1"),
        E.ArgumentError,
        ["data must be a pandas DataFrame", "dict"],
    ),
    "replicates-unknown-method": (
        lambda: replicate_weights(toy(), "w", "sdr"),
        E.ArgumentError,
        ["method must be one of", "'sdr'"],
    ),
    "replicates-argument-not-used": (
        lambda: replicate_weights(toy(), "w", "fay", zone="Z", **FAY),
        E.ArgumentError,
        ["method='fay' does not use zone"],
    ),
    "replicates-argument-missing": (
        lambda: replicate_weights(toy(), "w", "fay", strata="S"),
        E.ArgumentError,
        ["method='fay' needs psu", "VARUNIT"],
    ),
    "replicates-column-missing": (
        lambda: replicate_weights(toy(), "w", "jkn", strata="VARSTRAT", psu="P"),
        E.ColumnNotFoundError,
        ["'VARSTRAT' (strata)", "not in the data", "Available columns"],
    ),
    "replicates-weight-not-numeric": (
        lambda: replicate_weights(toy().assign(w="a"), "w", "jk1", psu="school"),
        E.WeightError,
        ["'w'", "numeric"],
    ),
    "replicates-weight-negative": (
        lambda: replicate_weights(at("w", 3, -1.0), "w", "jk1", psu="school"),
        E.WeightError,
        ["'w'", "negative", "row 3"],
    ),
    "replicates-weight-missing": (
        lambda: replicate_weights(at("w", 2, np.nan), "w", "jk1", psu="school"),
        E.WeightError,
        ["'w'", "missing", "row 2"],
    ),
    "replicates-weight-infinite": (
        lambda: replicate_weights(at("w", 5, np.inf), "w", "jk1", psu="school"),
        E.WeightError,
        ["'w'", "infinite", "row 5"],
    ),
    "replicates-weight-all-zero": (
        lambda: replicate_weights(toy().assign(w=0.0), "w", "jk1", psu="school"),
        E.WeightError,
        ["'w'", "zero on every row"],
    ),
    "replicates-nest-without-strata": (
        lambda: replicate_weights(toy(), "w", "jkn", strata="S", nest=True),
        E.ArgumentError,
        ["nest=True reads PSU labels within strata", "strata= and psu="],
    ),
    "replicates-fay-k-range": (
        lambda: replicate_weights(toy(), "w", "fay", fay_k=1.0, **FAY),
        E.ArgumentError,
        ["fay_k must be a number in [0, 1)", "1.0"],
    ),
    "replicates-brr-with-fay-k": (
        lambda: replicate_weights(toy(), "w", "brr", fay_k=0.5, **FAY),
        E.ArgumentError,
        ["'brr' is Fay's method with k = 0", "method='fay'"],
    ),
    "replicates-design-missing-values": (
        lambda: replicate_weights(at("S", 4, np.nan), "w", "jkn", strata="S", psu="school"),
        E.DesignError,
        ["stratum column 'S'", "missing values", "row 4"],
    ),
    "replicates-psu-not-nested": (
        lambda: replicate_weights(toy(), "w", "fay", strata="S", psu="P"),
        E.DesignError,
        ["PSU 1 of 'P'", "more than one stratum of 'S' (1, 2)", "nest=True"],
    ),
    "replicates-single-psu-stratum": (
        lambda: replicate_weights(toy().iloc[1:], "w", "jkn", strata="S", psu="school"),
        E.DesignError,
        ["Stratum 1 of 'S' has 1 PSU(s)", "method='jkn' needs at least 2 PSUs in every stratum"],
    ),
    "replicates-fay-not-two-psus": (
        lambda: replicate_weights(
            toy().assign(S=[1, 1, 1, 2, 3, 3, 4, 4]), "w", "fay", strata="S", psu="school"
        ),
        E.DesignError,
        ["exactly 2 PSUs in every stratum", "stratum 1 of 'S' has 3", "pseudo-strata"],
    ),
    "replicates-jk1-one-psu": (
        lambda: replicate_weights(toy().assign(school=1), "w", "jk1", psu="school"),
        E.DesignError,
        ["method='jk1' needs at least 2 PSUs; the data have 1"],
    ),
    "replicates-jk2-bad-rep": (
        lambda: replicate_weights(toy().assign(R=[1, 2, 1, 0, 1, 0, 1, 0]), "w", "jk2", zone="Z", rep="R"),
        E.DesignError,
        ["'R' must be 0 or 1", "found 2 at row 1"],
    ),
    "replicates-jk2-one-half": (
        lambda: replicate_weights(toy().assign(R=[1, 1, 1, 0, 1, 0, 1, 0]), "w", "jk2", zone="Z", rep="R"),
        E.DesignError,
        ["Zone 1 of 'Z' has rows only with R = 1", "both halves"],
    ),
    "replicates-too-few": (
        lambda: replicate_weights(toy().iloc[:2], "w", "jk2", zone="Z", rep="R"),
        E.DesignError,
        ["method='jk2' gives 1 replicate", "at least 2"],
    ),
    "replicates-bootstrap-n-replicates": (
        lambda: replicate_weights(toy(), "w", "bootstrap", psu="school", n_replicates=1),
        E.ArgumentError,
        ["n_replicates must be an integer of at least 2", "got 1"],
    ),
    "replicates-hadamard-order": (
        lambda: replicate_weights(toy(), "w", "fay", n_replicates=6, **FAY),
        E.ArgumentError,
        ["For 4 strata, n_replicates must be the order of an available Hadamard matrix", "(e.g. 4)", "got 6"],
    ),
    "variance-too-few-replicates": (
        lambda: replicate_variance([1.0], 1.0, "brr"),
        E.ArgumentError,
        ["at least 2 replicates; got 1"],
    ),
    "variance-not-finite": (
        lambda: replicate_variance([1.0, np.nan, 2.0, 3.0], 1.0, "brr"),
        E.ArgumentError,
        ["not finite for 1 replicate(s)", "replicate 2"],
    ),
    "variance-shape": (
        lambda: replicate_variance(np.ones((4, 2)), [1.0, 2.0, 3.0], "brr"),
        E.ArgumentError,
        ["full has 3 value(s) but estimates has 2 column(s)"],
    ),
    "variance-jkn-without-rscales": (
        lambda: replicate_variance(EST, 10.0, "jkn"),
        E.ArgumentError,
        ["method='jkn' needs the (n_h - 1) / n_h", "rscales="],
    ),
    "variance-bad-rscales": (
        lambda: replicate_variance(EST, 10.0, "brr", rscales=[1.0, 1.0]),
        E.ArgumentError,
        ["rscales must hold 4 finite non-negative numbers", "got 2"],
    ),
    "variance-bad-scale": (
        lambda: replicate_variance(EST, 10.0, "brr", scale=-1.0),
        E.ArgumentError,
        ["scale must be a positive finite number", "-1.0"],
    ),
    "variance-no-method": (
        lambda: replicate_variance(EST, 10.0),
        E.ArgumentError,
        ["Without a method, give scale"],
    ),
    "variance-option-not-used": (
        lambda: replicate_variance(EST, 10.0, "jk1", fay_k=0.5),
        E.ArgumentError,
        ["fay_k applies to methods 'fay' and 'brr' only", "'jk1'"],
    ),
    "variance-replicates-differ": (
        lambda: replicate_variance(EST, 10.0, replicate_weights(toy(), "w", "brr", n_replicates=8, **FAY)),
        E.ArgumentError,
        ["estimates has 4 replicate(s) but the ReplicateWeights have 8"],
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error(case):
    call, exc, fragments = ERRORS[case]
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_errors_are_value_or_key_errors():
    assert issubclass(E.DesignError, E.WemixError) and issubclass(E.DesignError, ValueError)


def test_every_documented_row_is_tested():
    section = DOC.read_text().split("## Replicate weights and variances", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\|\s*`replicate_\w+`\s*\|\s*`([a-z0-9-]+)`\s*\|", section, flags=re.M)
    assert len(documented) == len(set(documented))
    assert set(documented) == set(ERRORS)
