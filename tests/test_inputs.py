"""Inputs read the same whatever their dtype, and bad inputs are refused by name.

pandas' extension dtypes (nullable, pyarrow, ``pd.NA`` text) fit exactly like their NumPy
counterparts in every role (fixed effects, random slopes, grouping factors, weights, the response,
``predict``'s newdata); group labels match by value in ``predict``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb import errors as E

pytest.importorskip("pyarrow")

W = ["W1", "W2"]
MISSING = np.arange(180) % 17 == 3  # rows given a missing value


def data() -> pd.DataFrame:
    d = wemix_nb.datasets.sleepstudy()
    codes = d["Subject"].cat.codes
    return d.assign(
        W1=2.0 + d["Days"] % 3,  # at least the level-2 weight: conditional weights >= 1
        W2=(1 + codes % 2).astype("int64"),
        x=(d["Days"] + codes % 3).astype("int64"),
        f=np.where(d["Days"] < 4, "a", np.where(d["Days"] < 7, "b", "c")).astype(object),
        b=d["Days"] < 5,
        g=codes.astype("int64"),
        yb=(d["Reaction"] > 300).astype("int64"),
    )


def with_missing(d: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` as object values with ``None`` on the MISSING rows (to be cast to a dtype)."""
    d = d.copy()
    values = d[column].astype(object)
    values[MISSING] = None
    d[column] = values
    return d


def fit(d: pd.DataFrame, formula: str, **kwargs) -> wemix_nb.MixResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.DroppedRowsWarning)
        return wemix_nb.mix(formula, d, W, **kwargs)


def assert_same_fit(a: wemix_nb.MixResult, b: wemix_nb.MixResult) -> None:
    assert list(a.coef.index) == list(b.coef.index)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10)
    np.testing.assert_allclose(a.SE, b.SE, rtol=1e-8)
    np.testing.assert_allclose(a.vars, b.vars, rtol=1e-8)
    assert a.lnl == pytest.approx(b.lnl, rel=1e-12)
    assert a.nobs == b.nobs


# (column, formula, extension dtypes, NumPy counterpart with missing values)
ROLES = [
    (
        "x",
        "Reaction ~ Days + x + (1|Subject)",
        ["Int64", "Float64", "int64[pyarrow]", "double[pyarrow]"],
        float,
    ),
    ("x", "Reaction ~ Days + (1 + x|Subject)", ["Int64", "int64[pyarrow]"], float),
    ("f", "Reaction ~ Days + f + (1|Subject)", ["string", "string[pyarrow]", "category"], object),
    ("f", "Reaction ~ Days + (1 + f|Subject)", ["string", "string[pyarrow]"], object),
    ("b", "Reaction ~ Days + b + (1|Subject)", ["boolean", "bool[pyarrow]"], bool),
    ("g", "Reaction ~ Days + (1|g)", ["Int64", "int64[pyarrow]", "string", "string[pyarrow]"], float),
    ("W1", "Reaction ~ Days + (1|Subject)", ["Float64", "double[pyarrow]"], float),
    ("W2", "Reaction ~ Days + (1|Subject)", ["Int64", "int64[pyarrow]", "Float64"], float),
    ("Reaction", "Reaction ~ Days + (1|Subject)", ["Float64", "double[pyarrow]"], float),
]
CASES = [(col, formula, dtype, kind) for col, formula, dtypes, kind in ROLES for dtype in dtypes]


@pytest.mark.parametrize(("column", "formula", "dtype", "kind"), CASES)
def test_extension_dtypes_fit_like_numpy(column, formula, dtype, kind):
    d = data()
    assert_same_fit(fit(d.astype({column: dtype}), formula), fit(d, formula))
    # with missing values (pd.NA): the rows are dropped as with NaN / None in NumPy columns
    holes = with_missing(d, column)
    reference = holes.astype({column: float}) if kind is float else holes
    if kind is bool:  # after dropping the rows, a NumPy bool column
        reference = holes[~MISSING].astype({column: bool})
    assert_same_fit(fit(holes.astype({column: dtype}), formula), fit(reference, formula))


@pytest.mark.parametrize("dtype", ["boolean", "bool[pyarrow]", "Int64", "int64[pyarrow]"])
def test_extension_dtypes_as_binomial_response(dtype):
    d = data()
    formula = "yb ~ Days + (1|Subject)"
    reference = fit(d, formula, family="binomial", nquad=1)
    response = d["yb"].astype(bool) if "bool" in dtype else d["yb"]
    assert_same_fit(fit(d.assign(yb=response.astype(dtype)), formula, family="binomial", nquad=1), reference)


def test_predict_reads_extension_dtypes_and_missing_values():
    d = data()
    result = fit(d, "Reaction ~ Days + x + f + (1 + x|g)")
    expected = result.predict(d)
    new = d.astype({"Days": "Int64", "x": "int64[pyarrow]", "f": "string[pyarrow]", "g": "Int64"})
    np.testing.assert_allclose(result.predict(new), expected, rtol=1e-12)
    new.loc[3, "x"] = pd.NA
    new.loc[5, "f"] = pd.NA
    new.loc[7, "g"] = pd.NA
    predicted = result.predict(new)
    assert predicted[[3, 5, 7]].isna().all()
    np.testing.assert_allclose(predicted.drop([3, 5, 7]), expected.drop([3, 5, 7]), rtol=1e-12)


def test_integer_that_float_cannot_hold_is_refused():
    d = data().assign(big=lambda d: (2**62 + (d["Reaction"] * 10).round()).astype("int64"))
    with pytest.raises(E.DataError, match=r"'big'.*2\*\*53"):
        fit(d, "big ~ Days + (1|Subject)")
    with pytest.raises(E.DataError, match=r"'big'.*2\*\*53"):
        fit(d, "Reaction ~ big + (1|Subject)")
    # large integer group labels are only labels
    fit(d.assign(g=d["g"] + 2**62), "Reaction ~ Days + (1|g)")


@pytest.mark.parametrize(
    ("assign", "kind", "words"),
    [
        ({"W1": 1 + 0j}, E.WeightError, ["'W1'", "complex"]),
        ({"x": lambda d: d["x"] + 1j}, E.DataError, ["'x'", "complex"]),
        ({"Reaction": lambda d: d["Reaction"] + 0j}, E.DataError, ["'Reaction'", "complex"]),
        ({"x": lambda d: pd.to_timedelta(d["x"], "D")}, E.DataError, ["'x'", "timedelta64"]),
        (
            {"x": lambda d: pd.Timestamp("2020-01-01") + pd.to_timedelta(d["x"], "D")},
            E.DataError,
            ["'x'", "datetime64"],
        ),
    ],
)
def test_values_that_are_not_real_numbers_are_refused(assign, kind, words):
    with pytest.raises(kind) as info:
        fit(data().assign(**assign), "Reaction ~ Days + x + (1|Subject)")
    for word in words:
        assert word in str(info.value)


# -- group labels in predict ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fitted", "new"),
    [
        (str, int),
        (str, float),
        (str, "category"),
        (int, str),
        (int, float),
        (int, "Int64"),
        (int, "category"),
        ("category", str),
        ("category", int),
        (float, int),
        (float, str),
    ],
)
def test_predict_matches_group_labels_by_value(fitted, new):
    d = data()
    labels = d["g"] + 301
    result = fit(d.assign(s=labels.astype(fitted)), "Reaction ~ Days + (1|s)")
    expected = result.predict()
    predicted = result.predict(d.assign(s=labels.astype(new)))
    np.testing.assert_allclose(predicted, expected, rtol=1e-12)
    # a label that is not a fitted one is still new
    with pytest.raises(E.NewLevelError, match="'999"):
        result.predict(d.assign(s=pd.Series(999, index=d.index).astype(new)))


def test_predict_matches_composite_group_labels_by_value():
    d = data().assign(school=lambda d: d["g"] // 3, cls=lambda d: d["g"] % 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.DroppedRowsWarning)
        result = wemix_nb.mix("Reaction ~ Days + (1|school) + (1|school:cls)", d)
    expected = result.predict()
    new = d.assign(school=d["school"].astype(float), cls=d["cls"].astype(str))
    np.testing.assert_allclose(result.predict(new), expected, rtol=1e-12)


# -- columns named like the intercept or a function of the formula language ------------------------


def sleep() -> pd.DataFrame:
    return wemix_nb.datasets.sleepstudy()


@pytest.mark.parametrize("name", ["scale", "center", "log", "C", "I", "poly", "np", "exp", "Q", "lag"])
@pytest.mark.parametrize(
    "where", ["Reaction ~ {} + (1|Subject)", "Reaction ~ Days + (1 + {}|Subject)", "{} ~ Days + (1|Subject)"]
)
def test_column_named_like_a_formula_function(name, where):
    original = "Reaction" if where.startswith("{}") else "Days"
    d = sleep().assign(**{name: sleep()[original]})
    with pytest.raises(E.FormulaError, match=f"Column '{name}'.*backticks, `{name}`"):
        wemix_nb.mix(where.format(name), d)
    quoted = wemix_nb.mix(where.format(f"`{name}`"), d)
    plain = wemix_nb.mix(where.format(original), d)
    np.testing.assert_allclose(quoted.coef, plain.coef, rtol=1e-10)
    np.testing.assert_allclose(quoted.vars, plain.vars, rtol=1e-8)


def test_formula_function_as_a_term_of_its_own():
    with pytest.raises(E.FormulaError, match="'log'.*function.*log\\(x\\)"):
        wemix_nb.mix("Reaction ~ log + (1|Subject)", sleep())
    # called, it is the function
    wemix_nb.mix("Reaction ~ log(Days + 1) + (1|Subject)", sleep())


def test_column_named_intercept():
    d = sleep().assign(Intercept=lambda d: d["Days"].astype(float))
    with pytest.raises(E.FormulaError, match="Column 'Intercept'.*`Intercept`"):
        wemix_nb.mix("Reaction ~ Intercept + (1|Subject)", d)
    with pytest.raises(E.FormulaError, match="`Intercept`"):
        wemix_nb.mix("Reaction ~ Days + (1 + Intercept|Subject)", d)
    # in backticks, the column; its coefficient is '`Intercept`', beside the intercept's
    quoted = wemix_nb.mix("Reaction ~ `Intercept` + (1 + `Intercept`|Subject)", d)
    plain = wemix_nb.mix("Reaction ~ Days + (1 + Days|Subject)", d)
    assert list(quoted.coef.index) == ["Intercept", "`Intercept`"]
    assert list(quoted.vars.index) == ["Subject.Intercept", "Subject.`Intercept`", "Residual"]
    np.testing.assert_allclose(quoted.coef, plain.coef, rtol=1e-10)
    np.testing.assert_allclose(quoted.SE, plain.SE, rtol=1e-8)
    np.testing.assert_allclose(quoted.vars, plain.vars, rtol=1e-8)
    np.testing.assert_allclose(quoted.predict(d), plain.predict(d), rtol=1e-10)
    test = wemix_nb.wald_test(quoted, hypothesis="`Intercept` = 10")
    assert test.names == ["`Intercept`"] and test.estimate.iloc[0] == pytest.approx(plain.coef["Days"])
    assert wemix_nb.wald_test(quoted, hypothesis="Intercept = 250").estimate.iloc[0] == pytest.approx(
        plain.coef["Intercept"]
    )
    # without the intercept, and inside a function
    no_intercept = wemix_nb.mix("Reaction ~ 0 + `Intercept` + (1|Subject)", d)
    assert list(no_intercept.coef.index) == ["`Intercept`"]
    logged = wemix_nb.mix("Reaction ~ np.log1p(`Intercept`) + (1|Subject)", d)
    assert list(logged.coef.index) == ["Intercept", "np.log1p(`Intercept`)"]
    # a response named Intercept is only a column
    response = wemix_nb.mix("Intercept ~ Days + (1|Subject)", d.assign(Intercept=d["Reaction"]))
    np.testing.assert_allclose(response.coef, plain.coef, rtol=1e-10)


# -- arguments of the wrong type or value ---------------------------------------------------------


def _small_fit():
    d = sleep().assign(W1=1.0, W2=1.0)
    return wemix_nb.mix("Reaction ~ Days + (1|Subject)", d, W)


def _pv_data():
    return sleep().assign(W1=1.0, W2=1.0, a=lambda d: d.Reaction, b=lambda d: d.Reaction + 1)


F = "Reaction ~ Days + (1|Subject)"
SLEEP = sleep().assign(W1=1.0, W2=1.0)
BAD_ARGUMENTS = {
    "weights=1": lambda: wemix_nb.mix(F, SLEEP, 1),
    "weights=[1, 2]": lambda: wemix_nb.mix(F, SLEEP, [1, 2]),
    "start=['a']": lambda: wemix_nb.mix(F, SLEEP, W, start=["a"]),
    "start=[nan]": lambda: wemix_nb.mix(F, SLEEP, W, start=[np.nan]),
    "start=[1j]": lambda: wemix_nb.mix(F, SLEEP, W, start=[1j]),
    "start=[[1]]": lambda: wemix_nb.mix(F, SLEEP, W, start=[[1.0]]),
    "nquad=1.0": lambda: wemix_nb.mix(F, SLEEP, W, family="binomial", nquad=1.0),
    "progress='yes'": lambda: wemix_nb.mix(F, SLEEP, W, progress="yes"),
    "pv=1": lambda: wemix_nb.mix("y ~ Days + (1|Subject)", _pv_data(), W, pv=1),
    "pv=[1, 2]": lambda: wemix_nb.mix("y ~ Days + (1|Subject)", _pv_data(), W, pv=[1, 2]),
    "n_jobs='a'": lambda: wemix_nb.mix("y ~ Days + (1|Subject)", _pv_data(), W, pv=["a", "b"], n_jobs="a"),
    "n_jobs=0": lambda: wemix_nb.mix("y ~ Days + (1|Subject)", _pv_data(), W, pv=["a", "b"], n_jobs=0),
    "client='x'": lambda: wemix_nb.mix("y ~ Days + (1|Subject)", _pv_data(), W, pv=["a", "b"], client="x"),
    "wald_test('fit')": lambda: wemix_nb.wald_test("fit"),
    "wald_test(coefs=1)": lambda: wemix_nb.wald_test(_small_fit(), coefs=1),
    "hypothesis=['ten']": lambda: wemix_nb.wald_test(_small_fit(), coefs="Days", hypothesis=["ten"]),
    "hypothesis=nan": lambda: wemix_nb.wald_test(_small_fit(), coefs="Days", hypothesis=np.nan),
    "hypothesis=[None]": lambda: wemix_nb.wald_test(_small_fit(), coefs="Days", hypothesis=[None]),
    "hypothesis={'Days': 'a'}": lambda: wemix_nb.wald_test(_small_fit(), hypothesis={"Days": "a"}),
    "hypothesis=1j": lambda: wemix_nb.wald_test(_small_fit(), coefs="Days", hypothesis=1j),
    "predict(allow_new_levels='no')": lambda: _small_fit().predict(SLEEP, allow_new_levels="no"),
    "conf_int(alpha='a')": lambda: _small_fit().conf_int(alpha="a"),
    "tidy(conf_level='a')": lambda: _small_fit().tidy(conf_level="a"),
    "confint(conf_level=95)": lambda: _small_fit().confint(conf_level=95),
    "summary(digits='a')": lambda: _small_fit().summary(digits="a"),
    "random_effects(with_sd='a')": lambda: _small_fit().random_effects(with_sd="a"),
    "degrees_of_freedom(1)": lambda: wemix_nb.degrees_of_freedom(1),
    "describe_weights(None, ...)": lambda: wemix_nb.describe_weights(None, W, "Subject"),
    "describe_weights(weights=1)": lambda: wemix_nb.describe_weights(SLEEP, 1, "Subject"),
    "describe_weights(groups=[1])": lambda: wemix_nb.describe_weights(SLEEP, W, [1]),
    "scale_weights(None, ...)": lambda: wemix_nb.scale_weights(None, W, "Subject"),
    "scale_weights(groups=1)": lambda: wemix_nb.scale_weights(SLEEP, W, 1),
    "scale_weights(cweights='x')": lambda: wemix_nb.scale_weights(SLEEP, W, "Subject", cweights="x"),
    "fit_many(1)": lambda: wemix_nb.fit_many(1),
    "fit_many(dict)": lambda: wemix_nb.fit_many({"formula": F, "data": SLEEP}),
    "fit_many(processes='a')": lambda: wemix_nb.fit_many([(F, SLEEP)], processes="a"),
    "fit_many(progress='a')": lambda: wemix_nb.fit_many([(F, SLEEP)], processes=1, progress="a"),
    "fit_many(client='a')": lambda: wemix_nb.fit_many([(F, SLEEP)], client="a"),
    "fit_many([{'foo': 1}])": lambda: wemix_nb.fit_many(
        [{"formula": F, "data": SLEEP, "foo": 1}], processes=1
    ),
    "fit_many([(F, d, 1)])": lambda: wemix_nb.fit_many([(F, SLEEP, 1)], processes=1),
    "predict(include_random='n')": lambda: _small_fit().predict(SLEEP, include_random="n"),
    "predict(se='y')": lambda: _small_fit().predict(SLEEP, include_random=False, se="y"),
    "combine_pv(1)": lambda: wemix_nb.combine_pv(1),
    "compare(1)": lambda: wemix_nb.compare(1),
    "compare([fit, 1])": lambda: wemix_nb.compare([_small_fit(), 1]),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_raise_argument_error(case):
    name = case.split("(")[-1].split("=")[0].strip("'[ ") if "=" in case else None
    with pytest.raises(E.ArgumentError) as info:
        BAD_ARGUMENTS[case]()
    if name and name.isidentifier():
        assert name in str(info.value), f"{case}: {info.value}"


@pytest.mark.parametrize(
    "weights", [("W1", "W2"), np.array(["W1", "W2"]), pd.Index(["W1", "W2"])], ids=["tuple", "array", "index"]
)
def test_weight_names_in_any_sequence(weights):
    reference = wemix_nb.mix(F, SLEEP, W)
    assert wemix_nb.mix(F, SLEEP, weights).coef.equals(reference.coef)


# -- numeric extremes -------------------------------------------------------------------------------

# Variance parameters of equivalent problems agree to the linear estimator's stopping point: its
# Newton polish judges the last steps by the exact gradient (see RTOL in test_properties.py).
VARIANCE_RTOL = 1e-8


def weighted() -> pd.DataFrame:
    d = sleep()
    return d.assign(
        W1=2.0 + d["Days"] % 3,  # at least the level-2 weight: conditional weights >= 1
        W2=1.0 + d["Subject"].cat.codes % 2,
        x=(d["Days"] * 7 % 5).astype(float),
        yb=(d["Reaction"] > 290).astype(int),
    )


@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e-100, 1e-8, 1e8, 1e100, 1e155, 1e300])
@pytest.mark.parametrize("family", [None, "binomial"])
def test_covariate_scale_changes_only_its_coefficient(scale, family):
    d = weighted()
    formula = ("yb" if family else "Reaction") + " ~ Days + x + (1|Subject)"
    options = {"family": family, "nquad": 1} if family else {}
    base = wemix_nb.mix(formula, d, W, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaled = wemix_nb.mix(formula, d.assign(x=d["x"] * scale), W, **options)
    # the coefficient of x * s is that of x / s, its SE too; nothing else changes
    ratio = pd.Series(1.0, index=base.coef.index)
    ratio["x"] = 1 / scale
    np.testing.assert_allclose(scaled.coef, base.coef * ratio, rtol=1e-9)
    np.testing.assert_allclose(scaled.SE, base.SE * ratio, rtol=1e-7)
    np.testing.assert_allclose(scaled.vars, base.vars, rtol=VARIANCE_RTOL)
    assert scaled.lnl == pytest.approx(base.lnl, rel=1e-10)
    beyond = [w for w in caught if issubclass(w.category, E.NumericalWarning)]
    # a variance of the coefficient beyond floating-point range (x * 1e-160 -> SE ~ 1e160) is said
    assert bool(beyond) == (not np.isfinite(scaled.cov_mat.loc["x", "x"]))
    if beyond:
        assert "'x'" in str(beyond[0].message)
        assert np.isnan(wemix_nb.wald_test(scaled, coefs="x").statistic)
        # tests of the other coefficients are unaffected
        assert wemix_nb.wald_test(scaled, coefs="Days").statistic == pytest.approx(
            wemix_nb.wald_test(base, coefs="Days").statistic, rel=1e-8
        )


@pytest.mark.parametrize("scale", [1e-300, 1e-100, 1e-20, 1e-6, 1e6, 1e20, 1e100, 1e300])
@pytest.mark.parametrize(
    ("formula", "family"),
    [("Reaction ~ Days + (1 + Days|Subject)", None), ("yb ~ Days + (1|Subject)", "binomial")],
)
def test_weight_scale_changes_only_the_likelihood(scale, formula, family):
    """Unconditional weights of every level times s (= top-level weights times s): only lnl
    changes, by the factor s."""
    d = weighted()
    base = wemix_nb.mix(formula, d, W, family=family)
    scaled = wemix_nb.mix(formula, d.assign(W1=d["W1"] * scale, W2=d["W2"] * scale), W, family=family)
    # a GLMM's SEs and variances come from quasi-Newton steps and numerical second derivatives,
    # which agree to ~2e-7 between weights that differ by a factor other than a power of two
    rtol = VARIANCE_RTOL if family is None else 1e-5
    np.testing.assert_allclose(scaled.coef, base.coef, rtol=1e-8)
    np.testing.assert_allclose(scaled.SE, base.SE, rtol=1e-8 if family is None else rtol)
    np.testing.assert_allclose(scaled.vars, base.vars, rtol=rtol)
    assert scaled.lnl == pytest.approx(base.lnl * scale, rel=1e-10)
    np.testing.assert_allclose(scaled.model_cov, base.model_cov / scale, rtol=1e-6)


# -- models the data cannot identify --------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, W])
def test_same_factor_in_the_fixed_and_the_random_part(weights):
    d = weighted()
    with pytest.raises(E.DataError, match="random intercept of 'Subject' is not identified.*'Subject'"):
        wemix_nb.mix("Reaction ~ Days + Subject + (1|Subject)", d, weights)
    # also at the top of three levels
    d = d.assign(G=(d["Subject"].cat.codes // 3).astype(str), W3=1.0)
    with pytest.raises(E.DataError, match="random intercept of 'G'"):
        wemix_nb.mix("Reaction ~ Days + G + (1|Subject) + (1|G)", d, None if weights is None else [*W, "W3"])
    # a factor of the fixed part that the groups are nested in, or the same factor's random slopes,
    # are identified
    wemix_nb.mix("Reaction ~ Days + G + (1|Subject)", d, weights)
    f = np.where(d["Days"] < 4, "a", np.where(d["Days"] < 7, "b", "c"))
    wemix_nb.mix("Reaction ~ Days + f + (1 + f|Subject)", d.assign(f=f), weights)


def test_random_slope_confounded_with_fixed_interactions():
    d = weighted()
    with pytest.raises(E.DataError, match="random slope of 'Days' of 'Subject'"):
        wemix_nb.mix("Reaction ~ Subject * Days + (0 + Days|Subject)", d)


@pytest.mark.parametrize(
    ("formula", "assign", "named"),
    [
        ("Reaction ~ Days + (1 + Days + D2|Subject)", {"D2": lambda d: 2 * d["Days"] + 1}, "'D2'"),
        ("Reaction ~ Days + (1 + c|Subject)", {"c": 3.0}, "'c'"),
        ("Reaction ~ Days + (1 + x|Subject)", {"x": 0.0}, "'x'"),
    ],
)
def test_collinear_or_constant_random_slopes(formula, assign, named):
    with pytest.raises(E.RankDeficiencyError, match=f"random-effect design of 'Subject'.*{named}"):
        wemix_nb.mix(formula, weighted().assign(**assign), W)


@pytest.mark.parametrize(("response", "family"), [("Reaction", None), ("yb", "binomial"), ("yc", "poisson")])
def test_random_slope_on_a_group_level_variable(response, family):
    """A slope constant within every group (up to rounding) next to a random intercept is refused
    by name; without the intercept, or varying within one group, it is a model."""
    d = weighted().assign(yc=lambda d: (d["Reaction"] // 25).astype(int))
    d = d.assign(age=20.0 + d["Subject"].cat.codes / 3, other=d["Days"] % 2)
    options = {"family": family, "nquad": 1} if family else {}
    with pytest.raises(E.DataError, match="random slope of 'age' of 'Subject' is not identified"):
        wemix_nb.mix(f"{response} ~ Days + age + (1 + age|Subject)", d, W, **options)
    with pytest.raises(E.DataError, match="random slope of 'age' of 'Subject'"):
        wemix_nb.mix(f"{response} ~ Days + (1 + Days + age|Subject)", d, W, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.WemixWarning)
        wemix_nb.mix(f"{response} ~ Days + age + (0 + age|Subject)", d, W, **options)
        varied = d["age"].where(d.index != 0, 99.0)  # one subject's age varies: identified
        wemix_nb.mix(f"{response} ~ Days + age + (1 + age|Subject)", d.assign(age=varied), W, **options)


def test_random_slope_on_a_group_level_variable_three_levels():
    d = weighted()
    d = d.assign(G=(d["Subject"].cat.codes // 3).astype(str), W3=1.0, c=d["Subject"].cat.codes * 1.0)
    # constant within the subjects (level 2), not within G: refused at level 2 only
    with pytest.raises(E.DataError, match="random slope of 'c' of 'Subject'"):
        wemix_nb.mix("Reaction ~ Days + (1 + c|Subject) + (1|G)", d, [*W, "W3"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.WemixWarning)
        wemix_nb.mix("Reaction ~ Days + c + (1|Subject) + (1 + c|G)", d, [*W, "W3"])


def test_response_reproduced_exactly():
    d = weighted()
    # by the fixed part alone
    with pytest.raises(E.DataError, match="fixed effects reproduce the response 'y' exactly"):
        wemix_nb.mix("y ~ Days + (1|Subject)", d.assign(y=3 + 2 * d["Days"]), W)
    with pytest.raises(E.DataError, match="fixed effects reproduce the response 'y' exactly"):
        wemix_nb.mix("y ~ Days + (1|Subject)", d.assign(y=1e4 + 2 * d["Days"]), W)
    # by the fixed and the random effects: a residual variance that is 0 up to rounding
    y = 3 + 2 * d["Days"] + d["Subject"].cat.codes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the optimiser's own complaints on the way
        # (refused by the estimator itself, or by the check of the residual variance after it)
        with pytest.raises(E.DataError, match="exactly"):
            wemix_nb.mix("y ~ Days + (1|Subject)", d.assign(y=y), W)
    # a tiny but real residual variance is a fit
    noise = np.random.default_rng(1).normal(scale=1e-3, size=len(d))
    fit = wemix_nb.mix("y ~ Days + (1|Subject)", d.assign(y=y + noise), W)
    assert fit.vars["Residual"] == pytest.approx(1e-6, rel=0.3)


# -- crossed factors and labels that restart within parents ----------------------------------------


def test_crossed_factors_are_not_given_the_nesting_hint():
    d = sleep().assign(Day=lambda d: d["Days"].astype(str))
    with pytest.raises(E.NestingError) as info:
        wemix_nb.mix("Reaction ~ 1 + (1|Subject) + (1|Day)", d)
    message = str(info.value)
    assert "'Subject' and 'Day' are crossed" in message
    assert "outside multilevel pseudo-likelihood" in message
    assert "/" not in message.split("crossed")[1]  # no '(1 | a/b)' hint


def test_restarting_labels_get_the_composite_hint():
    pisa = wemix_nb.datasets.pisa2012_like()
    data = pisa.assign(klass=pisa.groupby("schoolid").cumcount() % 3)
    with pytest.raises(E.NestingError) as info:
        wemix_nb.mix("pv1math ~ escs + (1|schoolid) + (1|klass)", data)
    message = str(info.value)
    assert "'(1 | schoolid/klass)'" in message and "restart" in message
    assert "crossed by design" in message
    # the hint works
    wemix_nb.mix("pv1math ~ escs + (1|schoolid/klass)", data)


def test_a_few_miscoded_groups_are_pointed_at():
    d = sleep().assign(G=lambda d: (d["Subject"].cat.codes // 3).astype(str))
    d.loc[0, "G"] = "5"
    with pytest.raises(E.NestingError, match=r"1 of the 18 groups of 'Subject'.*'308' in '0', '5'.*labels"):
        wemix_nb.mix("Reaction ~ Days + (1|Subject) + (1|G)", d)


def test_two_names_for_the_same_groups():
    d = sleep().assign(S2=lambda d: "s" + d["Subject"].astype(str))
    with pytest.raises(E.NestingError, match="'Subject' and 'S2' define the same 18 groups"):
        wemix_nb.mix("Reaction ~ Days + (1|Subject) + (1|S2)", d)


@pytest.mark.parametrize("scale", [2.0**-30, 1e-8, 1e-6, 1e6, 1e8, 1e-60, 1e60])
@pytest.mark.parametrize(("response", "family"), [("Reaction", None), ("yb", "binomial")])
def test_random_slope_scale_changes_only_its_variance(scale, response, family):
    """A random slope on ``Days * s``: the slope's variance is that of ``Days`` over ``s**2``, its
    covariance with the intercept over ``s``, its random effects over ``s``; nothing else changes
    (the optimisers start from identity factors, so this needs the random-effect columns
    conditioned: wemix_nb.results.conditioning)."""
    d = weighted()
    formula = f"{response} ~ Days + (1 + Days|Subject)"
    options = {"family": family, "nquad": 1} if family else {}
    base = wemix_nb.mix(formula, d, W, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", E.ConvergenceWarning)
        scaled = wemix_nb.mix(formula, d.assign(Days=d["Days"] * scale), W, **options)
    assert scaled.converged
    assert scaled.lnl == pytest.approx(base.lnl, rel=1e-12)
    per_term = {"Intercept": 1.0, "Days": scale}
    coef = pd.Series([1.0, scale], index=base.coef.index)
    np.testing.assert_allclose(scaled.coef * coef, base.coef, rtol=1e-10)
    # a GLMM's standard errors come from numerical second derivatives
    np.testing.assert_allclose(scaled.SE * coef, base.SE, rtol=1e-10 if family is None else 1e-5)
    terms = [name.split(".")[1:] for name in base.vars.index]
    factor = np.array([per_term[t[0]] * per_term[t[-1]] if t else 1.0 for t in terms])
    np.testing.assert_allclose(scaled.vars * factor, base.vars, rtol=RTOL_SLOPE)
    rows = np.array([per_term[name.split(".")[1]] for name in base.theta.index])  # the row's term
    np.testing.assert_allclose(scaled.theta * rows, base.theta, rtol=RTOL_SLOPE, atol=1e-12)
    entry = np.array([per_term[n.split(".")[1]] * per_term[n.split(".")[-1]] for n in base.theta.index])
    np.testing.assert_allclose(scaled.var_theta * np.outer(entry, entry), base.var_theta, rtol=1e-5)
    table = base.varDF
    # a variance (var2 empty) or a covariance; the residual variance (var1 empty) does not change
    se_factor = [
        per_term.get(a, 1.0) * per_term.get(b if isinstance(b, str) else a, 1.0)
        for a, b in zip(table["var1"], table["var2"], strict=True)
    ]
    np.testing.assert_allclose(scaled.varDF["vcov"] * se_factor, table["vcov"], rtol=RTOL_SLOPE)
    np.testing.assert_allclose(scaled.varDF["SEvcov"] * se_factor, table["SEvcov"], rtol=1e-5)
    ranef = scaled.ranef["Subject"] * pd.Series(per_term)[base.ranef["Subject"].columns].to_numpy()
    np.testing.assert_allclose(ranef, base.ranef["Subject"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(scaled.fitted, base.fitted, rtol=1e-10)
    # the likelihood function of the model as given returns the fit's lnl at its estimate
    loglik = wemix_nb.likelihood(formula, d.assign(Days=d["Days"] * scale), W, **options)
    assert loglik(loglik.params_of(scaled)) == pytest.approx(scaled.lnl, rel=1e-12)


#: variance parameters of a random slope on a rescaled covariate agree to the optimisers' stopping
#: points (the scaled problems differ by a power of two in the slope's column, not exactly)
RTOL_SLOPE = 1e-8
