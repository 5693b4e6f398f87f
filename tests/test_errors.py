"""Every bad input of docs/errors.md: the exception type, and a message naming the column/level/group.

Each row of the table in docs/errors.md has an id; ``test_every_documented_row_is_tested`` checks that
the ids here and there are the same.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb import errors as E

# the design-non-finite case evaluates np.log(0) on purpose
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
F = "Reaction ~ Days + (1|Subject)"
W = ["W1", "W2"]


def sleep() -> pd.DataFrame:
    d = wemix_nb.datasets.sleepstudy()
    return d.assign(W1=1.0, W2=1.0)


def where(d: pd.DataFrame, mask, value, column: str) -> pd.DataFrame:
    d = d.copy()
    d[column] = np.where(mask, value, d[column])
    return d


def _fit_small():
    return wemix_nb.mix(F, sleep(), W)


def _by_subject() -> np.ndarray:
    """A 0/1 outcome constant within each subject (alternating between subjects)."""
    codes = sleep().Subject.astype(str).rank(method="dense").to_numpy().astype(int)
    return (codes % 2).astype(float)


# id -> (call, exception type, substrings the message must contain)
ERRORS = {
    "formula-column-missing": (
        lambda: wemix_nb.mix("Reaction ~ Foo + (1|Subject)", sleep(), W),
        E.ColumnNotFoundError,
        ["'Foo'", "not in the data"],
    ),
    "group-column-missing": (
        lambda: wemix_nb.mix("Reaction ~ Days + (1|School)", sleep(), W),
        E.ColumnNotFoundError,
        ["'School'"],
    ),
    "weight-column-missing": (
        lambda: wemix_nb.mix(F, sleep(), ["W1", "Wx"]),
        E.ColumnNotFoundError,
        ["Weight column", "'Wx'"],
    ),
    "weight-not-numeric": (
        lambda: wemix_nb.mix(F, sleep().assign(W1="a"), W),
        E.WeightError,
        ["'W1'", "numeric"],
    ),
    "weight-negative": (
        lambda: wemix_nb.mix(F, where(sleep(), np.arange(180) == 3, -1.0, "W1"), W),
        E.WeightError,
        ["'W1'", "level 1", "negative", "row 3"],
    ),
    "weight-infinite": (
        lambda: wemix_nb.mix(F, where(sleep(), np.arange(180) == 5, np.inf, "W2"), W),
        E.WeightError,
        ["'W2'", "level 2", "infinite", "row 5"],
    ),
    "level2-weight-varies": (
        lambda: wemix_nb.mix(F, where(sleep(), np.arange(180) == 3, 2.0, "W2"), W),
        E.WeightError,
        ["'W2'", "Level-2", "'Subject'", "'308'"],
    ),
    "too-many-weights": (
        lambda: wemix_nb.mix(F, sleep(), ["W1", "W2", "W2"]),
        E.WeightError,
        ["2 levels", "'Subject'", "got 3"],
    ),
    "too-few-weights": (
        lambda: wemix_nb.mix(
            "Reaction ~ Days + (1|Subject) + (1|G)",
            sleep().assign(G=lambda d: d.Subject.cat.codes // 6),
            ["W1", "W2"],
        ),
        E.WeightError,
        ["3 levels", "got 2", "['W1', 'W2']", "or 1 for level-1 weights only"],
    ),
    "weights-not-a-list": (lambda: wemix_nb.mix(F, sleep(), "W1"), E.ArgumentError, ["list of column names"]),
    "not-nested": (
        lambda: wemix_nb.mix(
            "Reaction ~ Days + (1|Subject) + (1|G)",
            sleep().assign(G=lambda d: (d.Days % 3).astype(str)),
            ["W1", "W2", "W2"],
        ),
        E.NestingError,
        ["'308'", "'Subject'", "'G'", "not nested"],
    ),
    "crossed-factors": (
        lambda: wemix_nb.mix(
            "Reaction ~ 1 + (1|Subject) + (1|Day)",
            sleep().assign(Day=lambda d: d.Days.astype(str)),
            ["W1", "W2", "W2"],
        ),
        E.NestingError,
        ["'Subject' and 'Day' are crossed", "outside multilevel pseudo-likelihood"],
    ),
    "same-number-of-groups": (
        lambda: wemix_nb.mix(
            "Reaction ~ Days + (1|Subject) + (1|S2)",
            sleep().assign(S2=lambda d: "s" + d.Subject.astype(str)),
            ["W1", "W2", "W2"],
        ),
        E.NestingError,
        ["'Subject'", "'S2'", "18 groups"],
    ),
    "every-group-single-row": (
        lambda: wemix_nb.mix("Reaction ~ Days + (1|row)", sleep().assign(row=np.arange(180)), W),
        E.DataError,
        ["'row'", "single row", "residual"],
    ),
    "constant-outcome": (
        lambda: wemix_nb.mix(F, sleep().assign(Reaction=3.0), W),
        E.DataError,
        ["'Reaction'", "constant"],
    ),
    "response-not-numeric": (
        lambda: wemix_nb.mix(F, sleep().assign(Reaction=lambda d: "r" + d.Days.astype(str)), W),
        E.DataError,
        ["'Reaction'", "numeric"],
    ),
    "binomial-not-binary": (
        lambda: wemix_nb.mix(F, sleep(), W, family="binomial"),
        E.DataError,
        ["'Reaction'", "0 or 1", "249.56"],
    ),
    "poisson-negative": (
        lambda: wemix_nb.mix(F, sleep().assign(Reaction=lambda d: -d.Days), W, family="poisson"),
        E.DataError,
        ["'Reaction'", "non-negative"],
    ),
    "rank-deficient": (
        lambda: wemix_nb.mix(
            "Reaction ~ Days + D2 + (1|Subject)", sleep().assign(D2=lambda d: 2 * d.Days), W
        ),
        E.RankDeficiencyError,
        ["'D2'", "rank deficient"],
    ),
    "empty-after-dropping": (
        lambda: wemix_nb.mix(F, sleep().assign(W1=0.0), W),
        E.DataError,
        ["No rows", "180", "'W1': 180"],
    ),
    "unknown-family": (lambda: wemix_nb.mix(F, sleep(), W, family="gamma"), E.FamilyError, ["'gamma'"]),
    "unknown-link": (
        lambda: wemix_nb.mix(F, sleep(), W, family="binomial", link="cloglog"),
        E.FamilyError,
        ["'cloglog'", "binomial"],
    ),
    "nquad-below-1": (
        lambda: wemix_nb.mix(F, sleep(), W, family="binomial", nquad=0),
        E.ArgumentError,
        ["nquad", "0"],
    ),
    "data-not-a-dataframe": (
        lambda: wemix_nb.mix(F, sleep().to_dict(), W),
        E.ArgumentError,
        ["DataFrame", "dict"],
    ),
    "no-random-term": (
        lambda: wemix_nb.mix("Reaction ~ Days", sleep(), W),
        E.FormulaError,
        ["random-effect"],
    ),
    "bad-random-term": (lambda: wemix_nb.mix("Reaction ~ Days + (1|)", sleep(), W), E.FormulaError, ["(1|)"]),
    "center-group-not-a-factor": (
        lambda: wemix_nb.mix(F, sleep(), W, center_group={"School": "~Days"}),
        E.ArgumentError,
        ["'School'", "'Subject'"],
    ),
    "wald-unknown-coefficient": (
        lambda: wemix_nb.wald_test(_fit_small(), coefs=["Days", "Nights"]),
        E.CoefficientNotFoundError,
        ["'Nights'", "'Intercept'", "'Days'"],
    ),
    "wald-hypothesis-length": (
        lambda: wemix_nb.wald_test(_fit_small(), coefs=["Days"], hypothesis=[1, 2]),
        E.ArgumentError,
        ["2 value(s)", "'Days'"],
    ),
    "predict-new-level": (
        lambda: _fit_small().predict(sleep().assign(Subject="999")),
        E.NewLevelError,
        ["'Subject'", "'999'", "allow_new_levels"],
    ),
    "response-infinite": (
        lambda: wemix_nb.mix(F, where(sleep(), np.arange(180) == 7, np.inf, "Reaction"), W),
        E.DataError,
        ["response", "'Reaction'", "non-finite", "row 7"],
    ),
    "design-non-finite": (
        lambda: wemix_nb.mix("Reaction ~ np.log(Days) + (1|Subject)", sleep(), W),
        E.DataError,
        ["fixed-effect design", "'np.log(Days)'", "18 row(s)"],
    ),
    "binomial-constant": (
        lambda: wemix_nb.mix("b ~ Days + (1|Subject)", sleep().assign(b=0), W, family="binomial"),
        E.DataError,
        ["'b'", "constant"],
    ),
    "center-transformed-term": (
        lambda: wemix_nb.mix(F, sleep(), W, center_grand="~ np.log(Days)"),
        E.ArgumentError,
        ["center_grand", "'np.log(Days)'", "column"],
    ),
    "link-without-family": (
        lambda: wemix_nb.mix(F, sleep(), W, link="probit"),
        E.ArgumentError,
        ["link", "'probit'", "family"],
    ),
    "max-iteration-below-1": (
        lambda: wemix_nb.mix(F, sleep(), W, family="binomial", max_iteration=0),
        E.ArgumentError,
        ["max_iteration", "0"],
    ),
    "cweights-not-bool": (lambda: wemix_nb.mix(F, sleep(), W, cweights="no"), E.ArgumentError, ["cweights"]),
    "duplicate-columns": (
        lambda: wemix_nb.mix(F, pd.concat([sleep(), sleep()[["Days"]]], axis=1), W),
        E.ArgumentError,
        ["'Days'", "several columns"],
    ),
    "predict-missing-column": (
        lambda: _fit_small().predict(sleep().drop(columns="Days")),
        E.ColumnNotFoundError,
        ["'Days'", "newdata"],
    ),
    "predict-unseen-category": (
        lambda: wemix_nb.mix(
            "Reaction ~ Days + f + (1|Subject)",
            sleep().assign(f=lambda d: np.where(d.Days < 5, "a", "b")),
            W,
        ).predict(sleep().assign(f="zz")),
        E.ArgumentError,
        ["'f'", "'zz'", "not seen in the fit"],
    ),
    "column-named-like-function": (
        lambda: wemix_nb.mix("Reaction ~ scale + (1|Subject)", sleep().assign(scale=lambda d: d.Days), W),
        E.FormulaError,
        ["'scale'", "backticks", "`scale`"],
    ),
    "column-named-intercept": (
        lambda: wemix_nb.mix(
            "Reaction ~ Intercept + (1|Subject)", sleep().assign(Intercept=lambda d: d.Days), W
        ),
        E.FormulaError,
        ["'Intercept'", "backticks", "`Intercept`"],
    ),
    "function-as-term": (
        lambda: wemix_nb.mix("Reaction ~ log + (1|Subject)", sleep(), W),
        E.FormulaError,
        ["'log'", "function", "log(x)"],
    ),
    "weight-complex": (
        lambda: wemix_nb.mix(F, sleep().assign(W1=1 + 0j), W),
        E.WeightError,
        ["'W1'", "complex"],
    ),
    "covariate-complex": (
        lambda: wemix_nb.mix("Reaction ~ z + (1|Subject)", sleep().assign(z=lambda d: d.Days + 1j), W),
        E.DataError,
        ["'z'", "complex"],
    ),
    "covariate-date": (
        lambda: wemix_nb.mix(
            "Reaction ~ z + (1|Subject)",
            sleep().assign(z=lambda d: pd.Timestamp("2020-01-01") + pd.to_timedelta(d.Days, "D")),
            W,
        ),
        E.DataError,
        ["'z'", "datetime64"],
    ),
    "integer-beyond-float": (
        lambda: wemix_nb.mix(
            "big ~ Days + (1|Subject)", sleep().assign(big=lambda d: 2**62 + d.Days.astype("int64")), W
        ),
        E.DataError,
        ["'big'", "2**53"],
    ),
    "predict-column-kind": (
        lambda: _fit_small().predict(sleep().assign(Days="a")),
        E.ArgumentError,
        ["newdata", "Days"],
    ),
    "wald-not-a-result": (
        lambda: wemix_nb.wald_test("fit"),
        E.ArgumentError,
        ["wald_test", "MixResult", "str"],
    ),
    "hypothesis-not-numbers": (
        lambda: wemix_nb.wald_test(_fit_small(), coefs=["Days"], hypothesis=["ten"]),
        E.ArgumentError,
        ["hypothesis", "numbers", "'ten'"],
    ),
    "start-not-numbers": (
        lambda: wemix_nb.mix(F, sleep(), W, start=["a"]),
        E.ArgumentError,
        ["start", "numbers", "'a'"],
    ),
    "names-not-strings": (
        lambda: wemix_nb.mix("y ~ Days + (1|Subject)", sleep(), W, pv=[1, 2]),
        E.ArgumentError,
        ["pv", "column names", "1 is not a name"],
    ),
    "n-jobs-invalid": (
        lambda: wemix_nb.mix(
            "y ~ Days + (1|Subject)", sleep().assign(a=1.0, b=2.0), W, pv=["a", "b"], n_jobs=0
        ),
        E.ArgumentError,
        ["n_jobs", "positive integer", "0"],
    ),
    "fit-many-unknown-argument": (
        lambda: wemix_nb.fit_many([{"formula": F, "data": sleep(), "foo": 1}]),
        E.ArgumentError,
        ["specs[0]", "'foo'", "mix()"],
    ),
    "same-factor-fixed-and-random": (
        lambda: wemix_nb.mix("Reaction ~ Days + Subject + (1|Subject)", sleep(), W),
        E.DataError,
        ["random intercept", "'Subject'", "not identified", "18 groups"],
    ),
    "random-design-collinear": (
        lambda: wemix_nb.mix(
            "Reaction ~ Days + (1 + Days + D2|Subject)", sleep().assign(D2=lambda d: 2 * d.Days), W
        ),
        E.RankDeficiencyError,
        ["random-effect design", "'Subject'", "'D2'"],
    ),
    "random-slope-constant-within-groups": (
        lambda: wemix_nb.mix(
            "Reaction ~ Days + age + (1 + age|Subject)",
            sleep().assign(age=lambda d: 20.0 + d.Subject.cat.codes),
            W,
        ),
        E.DataError,
        ["random slope of 'age' of 'Subject'", "constant within every group", "not identified"],
    ),
    "response-reproduced-exactly": (
        lambda: wemix_nb.mix("y ~ Days + (1|Subject)", sleep().assign(y=lambda d: 3 + 2 * d.Days), W),
        E.DataError,
        ["reproduce the response 'y' exactly", "'Days'"],
    ),
    "wald-dependent-restrictions": (
        lambda: wemix_nb.wald_test(_fit_small(), hypothesis="Days = 2, 2*Days = 4"),
        E.ArgumentError,
        ["linearly dependent"],
    ),
    "predict-se-conditional": (
        lambda: _fit_small().predict(sleep(), se=True),
        E.ArgumentError,
        ["se=True", "include_random=False"],
    ),
    "residuals-unknown-type": (
        lambda: _fit_small().residuals("studentized"),
        E.ArgumentError,
        ["'studentized'", "'pearson'"],
    ),
    "confint-unknown-which": (
        lambda: _fit_small().confint(which="random"),
        E.ArgumentError,
        ["which", "'variances'", "'random'"],
    ),
    "likelihood-parameters-length": (
        lambda: wemix_nb.likelihood(F, sleep(), W)([1.0, 2.0]),
        E.ArgumentError,
        ["4 values", "'sigma'", "got 2"],
    ),
    "likelihood-parameters-not-real": (
        lambda: wemix_nb.likelihood(F, sleep(), W)([250.0, 10.0, "one", 30.0]),
        E.ArgumentError,
        ["'Subject.Intercept'", "finite real number", "'one'"],
    ),
    "likelihood-profiled-glmm": (
        lambda: wemix_nb.likelihood(
            "b ~ Days + (1|Subject)",
            sleep().assign(b=lambda d: (d.Reaction > 300) * 1),
            W,
            family="binomial",
            profiled=True,
        ),
        E.ArgumentError,
        ["profiled=True", "linear models"],
    ),
    "combine-pv-different-model": (
        lambda: wemix_nb.combine_pv([_fit_small(), wemix_nb.mix("Reaction ~ 1 + (1|Subject)", sleep(), W)]),
        E.ArgumentError,
        ["Fit 2", "fixed effects", "only fit 1 has ['Days']"],
    ),
    "one-top-level-group": (
        lambda: wemix_nb.mix(F, sleep()[sleep().Subject.astype(str) == "308"], W),
        E.DataError,
        ["at least 2 top-level groups", "'Subject'", "level 2", "'308'"],
    ),
    "cbind-not-binomial": (
        lambda: wemix_nb.mix("cbind(Days, Days) ~ Days + (1|Subject)", sleep(), W),
        E.FormulaError,
        ["'cbind(Days, Days)'", "family='binomial'"],
    ),
    "cbind-bad-counts": (
        lambda: wemix_nb.mix(
            "cbind(k, 3 - k) ~ Days + (1|Subject)",
            sleep().assign(k=np.where(np.arange(180) == 6, 1.5, 1.0)),
            W,
            family="binomial",
        ),
        E.DataError,
        ["'cbind(k, 3 - k)'", "'k'", "whole numbers", "1.5", "row 6"],
    ),
    "offset-non-finite": (
        lambda: wemix_nb.mix("Reaction ~ Days + offset(np.log(Days)) + (1|Subject)", sleep(), W),
        E.DataError,
        ["offset", "non-finite", "'np.log(Days)'", "18 row(s)"],
    ),
    "offset-values-length": (
        lambda: wemix_nb.mix(F, sleep(), W, offset=np.zeros(3)),
        E.ArgumentError,
        ["offset", "one value per row", "180"],
    ),
    "predict-offset-needed": (
        lambda: wemix_nb.mix(F, sleep(), W, offset=np.zeros(180)).predict(sleep()),
        E.ArgumentError,
        ["offset given as values", "predict(newdata, offset=...)"],
    ),
    "binomial-groups-separated": (
        lambda: wemix_nb.mix("b ~ Days + (1|Subject)", sleep().assign(b=_by_subject()), W, family="binomial"),
        E.DataError,
        ["'Subject'", "constant outcome", "no finite estimate"],
    ),
    "binomial-every-group-single-row": (
        lambda: wemix_nb.mix(
            "b ~ Days + (1|row)",
            sleep().assign(b=lambda d: (d.Reaction > 290).astype(int), row=np.arange(180)),
            W,
            family="binomial",
        ),
        E.DataError,
        ["'row'", "single row", "binary", "not identified"],
    ),
}

# id -> (data modifier, expected warning substrings, rows left); the fit goes ahead
DROPPED = {
    "weight-nan": (
        lambda d: where(d, np.arange(180) < 3, np.nan, "W1"),
        ["3 row(s)", "missing", "'W1': 3"],
        177,
    ),
    "weight-zero": (
        lambda d: where(d, np.arange(180) < 4, 0.0, "W1"),
        ["4 row(s)", "zero weight", "'W1': 4"],
        176,
    ),
    "covariate-missing": (
        lambda d: where(d, np.arange(180) % 50 == 0, np.nan, "Days"),
        ["4 row(s)", "missing", "'Days': 4"],
        176,
    ),
}


def _no_between_variance() -> pd.DataFrame:
    """Every subject has the same mean residual: the subject variance is estimated at 0."""
    d = sleep()
    noise = d["Reaction"] - d.groupby("Subject", observed=True)["Reaction"].transform("mean")
    return d.assign(Reaction=250 + 10 * d["Days"] + noise)


# id -> (data, formula, warning, substrings the message must contain); the fit goes ahead
DIAGNOSED = {
    "few-groups": (
        sleep,
        F,
        E.FewGroupsWarning,
        ["Only 18 top-level groups (Subject)", "t distribution with 16 df"],
    ),
    "singular-fit": (
        _no_between_variance,
        F,
        E.SingularFitWarning,
        ["Boundary (singular) fit", "Subject: the variance of Intercept is numerically 0"],
    ),
}


# id -> (call, warning type, substrings); the fit returns, marked not converged
NOT_CONVERGED = {
    "variance-runaway": (  # 17 of the 18 subjects have a constant outcome
        lambda: wemix_nb.mix(
            "b ~ Days + (1|Subject)",
            sleep().assign(b=np.where(np.arange(180) < 4, 1.0 - _by_subject(), _by_subject())),
            W,
            family="binomial",
        ),
        E.ConvergenceWarning,
        ["'Subject'", "running away", "constant outcome"],
    ),
}

# id -> (call, warning type, substrings of its message); the fit goes ahead
WARNED = {
    "fixed-variance-beyond-float": (
        lambda: wemix_nb.mix(
            "Reaction ~ Days + x + (1|Subject)", sleep().assign(x=lambda d: (d.Days * 7 % 5) * 1e-160), W
        ),
        E.NumericalWarning,
        ["'x'", "beyond floating-point range", "inf in cov_mat"],
    ),
    "very-few-top-level-groups": (
        lambda: wemix_nb.mix(
            "b ~ Days + (1|Subject)",
            sleep().assign(b=lambda d: (d.Reaction > 290).astype(int)).loc[lambda d: d.Subject.cat.codes < 4],
            W,
            family="binomial",
        ),
        E.FewGroupsWarning,
        ["Only 4 top-level groups (Subject)", "With only 4 groups", "barely identified"],
    ),
}

# id -> data; fits without error or warning (other than about its 18 top-level groups)
FINE = {
    "some-groups-single-row": lambda: sleep()[~((sleep().Subject.astype(str) == "308") & (sleep().Days > 0))],
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error(case):
    call, kind, parts = ERRORS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.DroppedRowsWarning)
        with pytest.raises(kind) as info:
            call()
    message = str(info.value)
    for part in parts:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert isinstance(info.value, E.WemixError)


@pytest.mark.parametrize("case", list(DROPPED))
def test_dropped_rows(case):
    modify, parts, left = DROPPED[case]
    with pytest.warns(E.DroppedRowsWarning) as record:
        fit = wemix_nb.mix(F, modify(sleep()), W)
    message = " ".join(str(w.message) for w in record if issubclass(w.category, E.DroppedRowsWarning))
    for part in parts:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert fit.nobs == left


@pytest.mark.parametrize("case", list(DIAGNOSED))
def test_diagnosed(case):
    make, formula, kind, parts = DIAGNOSED[case]
    with pytest.warns(kind) as record:
        fit = wemix_nb.mix(formula, make(), W)
    message = " ".join(str(w.message) for w in record if issubclass(w.category, kind))
    for part in parts:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert fit.converged


@pytest.mark.parametrize("case", list(WARNED))
def test_warned(case):
    call, kind, parts = WARNED[case]
    with pytest.warns(kind) as record:
        fit = call()
    message = " ".join(str(w.message) for w in record if issubclass(w.category, kind))
    for part in parts:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert np.all(np.isfinite(fit.coef)) and np.all(np.isfinite(fit.SE))


@pytest.mark.parametrize("case", list(NOT_CONVERGED))
def test_not_converged(case):
    call, kind, parts = NOT_CONVERGED[case]
    with pytest.warns(kind) as record:
        fit = call()
    message = " ".join(str(w.message) for w in record if issubclass(w.category, kind))
    for part in parts:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert not fit.converged


@pytest.mark.parametrize("case", list(FINE))
def test_fine(case):
    data = FINE[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", E.FewGroupsWarning)  # the sleepstudy's 18 subjects
        fit = wemix_nb.mix(F, data, W)
    assert fit.ngroups["Subject"] == 18 and fit.nobs == 171
    assert fit.ranef["Subject"].shape == (18, 1)


def test_errors_are_also_builtin_types():
    with pytest.raises(KeyError):
        ERRORS["formula-column-missing"][0]()
    with pytest.raises(ValueError):
        ERRORS["weight-negative"][0]()


def test_every_documented_row_is_tested():
    text = DOC.read_text()
    documented = re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|", text, flags=re.M)
    assert len(documented) == len(set(documented))
    assert set(documented) == (
        set(ERRORS) | set(DROPPED) | set(WARNED) | set(NOT_CONVERGED) | set(DIAGNOSED) | set(FINE)
    )
