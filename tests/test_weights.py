"""The weight rules of wemix_nb.model.weights, and that every user of weights applies them alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wemix_nb.errors import WeightError
from wemix_nb.model import weights as rules
from wemix_nb.model.frame import build_model_frame
from wemix_nb.survey.describe import describe_weights
from wemix_nb.survey.scaling import scale_weights


def _two_levels(scale: float, level2_varies: bool) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(6), 5)
    w2 = rng.uniform(1, 2, 6)[g]
    if level2_varies:
        w2[1] *= 3.0  # one row of group 0 has a 3-fold level-2 weight
    return pd.DataFrame(
        {
            "g": g,
            "x": rng.normal(size=g.size),
            "y": rng.normal(size=g.size),
            "w1": scale * w2 * rng.uniform(1, 3, g.size),
            "w2": scale * w2,
        }
    )


USERS = {
    "model frame": lambda d: build_model_frame("y ~ x + (1|g)", d, ["w1", "w2"]),
    "describe_weights": lambda d: describe_weights(d, ["w1", "w2"], ["g"]),
    "scale_weights": lambda d: scale_weights(d, ["w1", "w2"], "g", "cluster"),
}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e9])
def test_constancy_within_groups_does_not_depend_on_the_weights_scale(user, scale):
    with pytest.raises(WeightError, match="'w2'.*varies within 1 group"):
        USERS[user](_two_levels(scale, level2_varies=True))
    USERS[user](_two_levels(scale, level2_varies=False))  # constant: accepted


def test_group_constant_gives_the_same_verdict_for_any_positive_multiple():
    rng = np.random.default_rng(2)
    index = np.repeat(np.arange(50), 4)
    values = rng.uniform(0.5, 2.0, 50)[index]
    values[rng.choice(values.size, 10, replace=False)] *= 1 + rng.choice([1e-12, 1e-6, 2.0], 10)
    _, varies = rules.group_constant(values, index, 50)
    assert 0 < varies.sum() < 50
    for c in [1e-12, 1e-9, 3.7, 1e9, 1e12]:
        np.testing.assert_array_equal(rules.group_constant(c * values, index, 50)[1], varies)


def test_scale_weights_validates_its_columns():
    data = _two_levels(1.0, level2_varies=False)
    with pytest.raises(WeightError, match="'w1' must be numeric"):
        scale_weights(data.assign(w1="a"), ["w1", "w2"], "g", "cluster")
    with pytest.raises(WeightError, match="'w1' must be numeric"):
        scale_weights(data.assign(w1=True), ["w1", "w2"], "g", "none")
    with pytest.raises(WeightError, match="'w2' \\(level 2\\) has negative values"):
        scale_weights(data.assign(w2=-data["w2"]), ["w1", "w2"], "g", "cluster")
    with pytest.raises(WeightError, match="'w1' \\(level 1\\) has infinite values"):
        scale_weights(data.assign(w1=np.where(data.index == 4, np.inf, data["w1"])), ["w1", "w2"], "g")


def test_conditional_and_unconditional_conversions_are_inverse():
    rng = np.random.default_rng(5)
    rows_to_class = rng.integers(0, 8, 60)
    rows_to_class[:8] = np.arange(8)
    class_to_school = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    up = [rows_to_class, class_to_school]
    unconditional = [rng.uniform(1, 9, 60), rng.uniform(1, 5, 8), rng.uniform(1, 3, 3)]
    conditional = rules.to_conditional(unconditional, up)
    np.testing.assert_allclose(conditional[0], unconditional[0] / unconditional[1][rows_to_class])
    np.testing.assert_array_equal(conditional[2], unconditional[2])
    back = rules.to_unconditional(conditional, up)
    for a, b in zip(back, unconditional, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    # unscaled: the given convention comes back unchanged
    same, cond = rules.level_weights(unconditional, up, conditional=False)
    assert all(a is b for a, b in zip(same, unconditional, strict=True))
    np.testing.assert_array_equal(cond[0], conditional[0])


@pytest.mark.parametrize("method", ["cluster", "effective"])
def test_scaled_conditional_weights_sum_to_the_cluster_sizes(method):
    rng = np.random.default_rng(8)
    parent = np.repeat(np.arange(4), [3, 5, 2, 6])
    values = rng.uniform(1, 10, parent.size)
    scaled = rules.scale_conditional([values, np.ones(4)], [parent], method)
    sums = np.bincount(parent, scaled[0])
    if method == "cluster":
        expected = np.bincount(parent).astype(float)
    else:
        expected = np.bincount(parent, values) ** 2 / np.bincount(parent, values**2)
    np.testing.assert_allclose(sums, expected, rtol=1e-13)
    np.testing.assert_array_equal(scaled[1], np.ones(4))  # the top level is never scaled
