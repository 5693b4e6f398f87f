"""The methods paragraph: :class:`~wemix_nb.display.report.facts.MethodFacts` -> sentences.

One function per topic turns one fit's facts into one or two sentences of plain academic English
(:data:`TOPICS`, in the order the paragraph states them). For several fits a topic on which all
fits agree is said once; otherwise each group of fits that agree gets its own sentence, led by
"In Model 1, ...", so every option in which the fits differ is stated for each of them. Every
sentence begins with an ordinary capitalised word, so that it can be led that way.

Citations are plain text, "(Rubin, 1987)"; :func:`references` lists the works the sentences cite,
in APA 7 form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import wemix_nb.display.report.style as style
from wemix_nb.display.report.content import Inline, Span, code, inline, italic, text_of
from wemix_nb.display.report.facts import MethodFacts, RandomPart, StandardErrors

__all__ = [
    "REFERENCES",
    "TOPICS",
    "Sentence",
    "methods_paragraph",
    "methods_sentences",
    "reference_inline",
    "references",
]

#: APA 7 entries of the works the paragraph may cite, by key
REFERENCES = {
    "asparouhov2006": "Asparouhov, T. (2006). General multi-level modeling with sampling weights. "
    "*Communications in Statistics\u2014Theory and Methods, 35*(3), 439\u2013460.",
    "barnard1999": "Barnard, J., & Rubin, D. B. (1999). Small-sample degrees of freedom with multiple "
    "imputation. *Biometrika, 86*(4), 948\u2013955.",
    "binder1983": "Binder, D. A. (1983). On the variances of asymptotically normal estimators from "
    "complex surveys. *International Statistical Review, 51*(3), 279\u2013292.",
    "judkins1990": "Judkins, D. R. (1990). Fay's method for variance estimation. *Journal of Official "
    "Statistics, 6*(3), 223\u2013239.",
    "kish1965": "Kish, L. (1965). *Survey sampling*. Wiley.",
    "pfeffermann1998": "Pfeffermann, D., Skinner, C. J., Holmes, D. J., Goldstein, H., & Rasbash, J. "
    "(1998). Weighting for unequal selection probabilities in multilevel models. *Journal of the "
    "Royal Statistical Society: Series B (Statistical Methodology), 60*(1), 23\u201340.",
    "rabehesketh2006": "Rabe-Hesketh, S., & Skrondal, A. (2006). Multilevel modelling of complex "
    "survey data. *Journal of the Royal Statistical Society: Series A (Statistics in Society), "
    "169*(4), 805\u2013827.",
    "raowu1988": "Rao, J. N. K., & Wu, C. F. J. (1988). Resampling inference with complex survey "
    "data. *Journal of the American Statistical Association, 83*(401), 231\u2013241.",
    "rubin1987": "Rubin, D. B. (1987). *Multiple imputation for nonresponse in surveys*. Wiley.",
    "rust1996": "Rust, K. F., & Rao, J. N. K. (1996). Variance estimation for complex surveys using "
    "replication techniques. *Statistical Methods in Medical Research, 5*(3), 283\u2013310.",
}

_NUMBER_WORDS = dict(
    enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
)
_DASH = "\u2013"


@dataclass(frozen=True)
class Sentence:
    """One statement of the paragraph: its topic, its text and the works it cites."""

    topic: str
    content: Inline
    refs: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The sentence as plain text."""
        return text_of(self.content)


# one topic's statement for one fit: (text, works cited, whether it only states the default)
Statement = tuple[Inline, tuple[str, ...], bool]


def _names(items: Sequence[Inline | str]) -> Inline:
    """``a``, ``a and b``, ``a, b and c``."""
    parts: list = []
    for i, item in enumerate(items):
        if i:
            parts.append(" and " if i == len(items) - 1 else ", ")
        parts.append(item)
    return inline(*parts)


def _range(columns: Sequence[str]) -> Inline:
    """``W_FSTR1``–``W_FSTR80`` (or the one or two names)."""
    if len(columns) <= 2:
        return _names([inline(code(c)) for c in columns])
    return inline(code(columns[0]), _DASH, code(columns[-1]))


def _levels_word(n: int) -> str:
    return _NUMBER_WORDS.get(n, str(n))


def _number(value: float) -> str:
    return f"{value:g}"


# -------------------------------------------------------------------------------------------------
# the topics


def _random_part(part: RandomPart) -> Inline:
    slopes = [t for t in part.terms if t != "Intercept"]
    intercept = "Intercept" in part.terms
    if not slopes:
        what: Inline = inline("a random intercept")
    else:
        noun = "slope" if len(slopes) == 1 else "slopes"
        head = (
            "a random intercept and random "
            if intercept
            else ("a random " if len(slopes) == 1 else "random ")
        )
        what = inline(head, noun, " of ", _names([inline(code(s)) for s in slopes]))
        if part.correlated:
            what = inline(what, " (correlated)")
        elif intercept or len(slopes) > 1:
            what = inline(what, " (uncorrelated)")
    return inline(what, " for ", code(part.group))


def _response(f: MethodFacts) -> Inline:
    if f.pv is not None:
        return inline("the plausible values ", _range(f.pv.columns))
    return inline(code(f.response))


def _kind(f: MethodFacts) -> str:
    if f.is_linear:
        return "linear mixed model"
    return "generalized linear mixed model"


def _offset_words(f: MethodFacts) -> Inline:
    if not f.offsets:
        return inline("")
    named = [inline("values given with the call") if o == "(offset)" else inline(code(o)) for o in f.offsets]
    noun = "an offset" if len(named) == 1 else "offsets"
    return inline(", and ", _names(named), f" as {noun} (a known part of the linear predictor)")


def _model(f: MethodFacts, subject: str = "The model") -> Statement:
    random = _names([_random_part(p) for p in f.random])
    family = "" if f.is_linear else f" ({f.family} family, {f.link} link)"
    text = inline(
        f"{subject} was a {_levels_word(len(f.levels))}-level {_kind(f)} of ",
        _response(f),
        family,
        " with ",
        random,
        _offset_words(f),
        ", estimated by multilevel pseudo-maximum likelihood (MPML; Rabe-Hesketh & Skrondal, 2006).",
    )
    if not f.is_linear:
        kind = "adaptive Gauss" if f.adaptive else "Gauss"
        if f.nquad == 1:
            integral = "the Laplace approximation (adaptive quadrature with one point per random effect)"
        else:
            integral = f"{kind}{_DASH}Hermite quadrature with {f.nquad} points per random effect"
        text = inline(text, " The likelihood was integrated over the random effects by ", integral)
        if f.laplace_rounding:
            text = inline(text, ", with the level-1 weights rounded as WeMix does")
        text = inline(text, ".")
    return text, ("rabehesketh2006",), False


def _data(f: MethodFacts) -> Statement:
    rows = f.levels[0]
    groups = [
        inline(style.count(lv.n), " groups of ", code(lv.unit), f" (level {lv.level})") for lv in f.levels[1:]
    ]
    nested = groups[0] if groups else inline("")
    for g in groups[1:]:
        nested = inline(nested, " within ", g)
    text = inline(f"The analysis used {style.count(rows.n)} rows (level 1)")
    if groups:
        text = inline(text, " in ", nested)
    return inline(text, "."), (), False


def _weights(f: MethodFacts) -> Statement:
    if f.weighting == "unweighted":
        return inline("The model was fitted without survey weights."), (), False
    if f.weighting == "level1":
        text = inline(
            "Only the rows were weighted (",
            code(f.levels[0].weight),
            ", level 1); every higher level had weight 1.",
        )
        return text, (), False
    columns = [
        inline(
            code(lv.weight), " for ", "the rows" if lv.level == 1 else code(lv.unit), f" (level {lv.level})"
        )
        for lv in f.levels
    ]
    text = inline("Survey weights entered the pseudo-likelihood at every level: ", _names(columns), ".")
    if f.conditional:
        how = " The weights below the top level were conditional on the selection of the unit one level up."
    else:
        how = (
            " The weights below the top level were unconditional (inverse overall selection "
            "probabilities) and were divided by the weight of the unit one level up to give the "
            "conditional weights the likelihood uses."
        )
    return inline(text, how), (), False


def _scaling(f: MethodFacts) -> Statement | None:
    if f.weighting != "all_levels":
        return None
    if f.scaling == "none":
        text = "The conditional weights were used as given, without rescaling within groups."
        return inline(text), (), True
    target = (
        "its number of sampled units"
        if f.scaling == "cluster"
        else "its effective sample size, (\u03a3w)\u00b2/\u03a3w\u00b2"
    )
    name = "cluster-size" if f.scaling == "cluster" else "effective-size"
    text = (
        "The conditional weights of the units in each group one level up were rescaled to sum to "
        f"{target} ({name} scaling; Pfeffermann et al., 1998; Asparouhov, 2006)."
    )
    return inline(text), ("pfeffermann1998", "asparouhov2006"), False


def _centering(f: MethodFacts) -> Statement:
    parts = []
    for factor, terms in f.center_group:
        columns = [c.strip() for c in terms.lstrip("~").split("+") if c.strip()]
        parts.append(
            inline(_names([inline(code(c)) for c in columns]), " on weighted means within ", code(factor))
        )
    if f.center_grand:
        columns = [c.strip() for c in f.center_grand.lstrip("~").split("+") if c.strip()]
        parts.append(inline(_names([inline(code(c)) for c in columns]), " on weighted grand means"))
    if not parts:
        return inline("The covariates were not centred."), (), True
    return inline("The covariates were centred: ", _names(parts), "."), (), False


_REPLICATE_METHODS = {
    "fay": ("Fay's balanced repeated replication", ("judkins1990",)),
    "brr": ("balanced repeated replication (BRR)", ("rust1996",)),
    "jk1": ("the delete-one jackknife (JK1)", ("rust1996",)),
    "jkn": ("the stratified jackknife (JKn)", ("rust1996",)),
    "jk2": ("the paired jackknife (JK2)", ("rust1996",)),
    "bootstrap": ("the Rao\u2013Wu rescaling bootstrap", ("raowu1988",)),
}
_CITATIONS = {
    "judkins1990": "Judkins, 1990",
    "rust1996": "Rust & Rao, 1996",
    "raowu1988": "Rao & Wu, 1988",
}


def _replicates(e: StandardErrors) -> Statement:
    name, refs = _REPLICATE_METHODS.get(e.method, ("replicate weights with given multipliers", ()))
    if e.method == "fay":
        name += f" with k = {_number(e.fay_k)}"
    cite = "; ".join(_CITATIONS[r] for r in refs)
    if cite:  # "(BRR; Rust & Rao, 1996)", not "(BRR) (Rust & Rao, 1996)"
        name = f"{name[:-1]}; {cite})" if name.endswith(")") else f"{name} ({cite})"
    text = inline(
        f"Standard errors come from {e.n_replicates} replicate weights (",
        _range(e.replicate_columns),
        f") by {name}",
        ": the model was refitted with each replicate weight, and the sampling variance is ",
        italic("c"),
        " times the sum of squared deviations of the replicate estimates from ",
        "the full-sample estimate" if e.mse else "their mean",
        ", with ",
        italic("c"),
        f" = {e.multiplier}.",
    )
    if len(e.replicate_levels) > 1:
        levels = " and ".join(str(lv) for lv in e.replicate_levels)
        text = inline(text, f" Replicate weights were given for levels {levels}.")
    return text, refs, False


def _errors(f: MethodFacts) -> Statement:
    e = f.errors
    if e.kind == "replicate":
        return _replicates(e)
    if e.kind == "sandwich":
        text = inline(
            "Standard errors are robust (sandwich) estimates clustered on the ",
            f"{style.count(e.n_clusters)} groups of ",
            code(e.cluster),
            ", the top level.",
        )
        return text, (), False
    if e.psu is None:
        psu = inline(f"{style.count(e.n_psu)} primary sampling units (the groups of ", code(e.cluster), ")")
    else:
        numbered = ", numbered within strata" if e.nest else ""
        psu = inline(f"{style.count(e.n_psu)} primary sampling units (", code(e.psu), f"{numbered})")
    text = inline(
        "Standard errors are design-based (Taylor linearization; Binder, 1983): the pseudo-likelihood "
        "scores of the top-level groups were summed within ",
        psu,
    )
    if e.strata is not None:
        text = inline(text, f" in {style.count(e.n_strata)} strata (", code(e.strata), ")")
    if e.fpc is not None:
        text = inline(text, ", with a finite population correction (", code(e.fpc), ")")
    text = inline(text, ".")
    if e.lonely_adjusted:
        text = inline(
            text, f" {e.lonely_adjusted} stratum/strata with a single PSU were centred on the grand mean."
        )
    return text, ("binder1983",), False


def _pv(f: MethodFacts) -> Statement:
    pv = f.pv
    if pv is None:
        return inline("The outcome was analysed as observed, without plausible values."), (), True
    text = inline(
        f"Each of the {_levels_word(pv.M)} plausible values (",
        _range(pv.columns),
        ") was analysed in turn, and the results were combined with Rubin's (1987) rules: the "
        "estimate is the mean over plausible values, and its variance the mean sampling variance "
        "plus (1 + 1/",
        italic("M"),
        ") times the variance between plausible values",
    )
    if pv.sampling == "first":
        text = inline(text, " (the sampling variance taken from the first plausible value)")
    digits = style.proportion_decimals([pv.fmi_low, pv.fmi_high])
    fmi = f"{style.proportion(pv.fmi_low, digits)} to {style.proportion(pv.fmi_high, digits)}"
    return (
        inline(text, f". The fraction of missing information ranged from {fmi} over the fixed effects."),
        ("rubin1987",),
        False,
    )


def _inference(f: MethodFacts) -> Statement:
    level = f"{100 * f.conf_level:g}%"
    lead = f"Tests and {level} confidence intervals of the fixed effects use "
    df = f.df
    if df.kind == "normal":
        return inline(lead + "the standard normal reference distribution."), (), False
    if f.pv is not None:
        low, high = style.df_value(df.low), style.df_value(df.high)
        span = f"{low}" if low == high else f"from {low} to {high}"
        text = inline(
            lead,
            italic("t"),
            f" distributions with Barnard{_DASH}Rubin degrees of freedom (Barnard & Rubin, 1999), {span}.",
        )
        return text, ("barnard1999",), False
    if df.n_psu is not None:
        strata = "stratum" if df.n_strata == 1 else "strata"
        rule = f"{style.count(df.n_psu)} PSUs minus {style.count(df.n_strata)} {strata}"
        why = ", because the design-based standard errors rest on fewer than 30 degrees of freedom"
    else:
        rule = f"{style.count(df.n_top)} top-level groups minus {df.n_fixed} fixed effects"
        why = ", because the robust standard errors rest on fewer than 30 clusters"
    text = inline(
        lead, "a ", italic("t"), f" distribution with {style.df_value(df.low)} degrees of freedom ({rule})"
    )
    if df.few_groups:
        text = inline(text, why)
    return inline(text, "."), (), False


def _rows(f: MethodFacts) -> Statement:
    dropped = f.dropped_missing + f.dropped_missing_pv + f.dropped_zero_weight
    if not dropped:
        return inline(f"All {style.count(f.rows_given)} rows of the data were used."), (), True
    reasons = []
    if f.dropped_missing:
        reasons.append(f"{style.count(f.dropped_missing)} for missing values in the model's variables")
    if f.dropped_missing_pv:
        reasons.append(f"{style.count(f.dropped_missing_pv)} for a missing plausible value")
    if f.dropped_zero_weight:
        reasons.append(f"{style.count(f.dropped_zero_weight)} for a zero weight")
    text = (
        f"Of the {style.count(f.rows_given)} rows of the data, {text_of(_names(reasons))} were excluded, "
        f"leaving {style.count(f.rows_used)}."
    )
    return inline(text), (), False


def _software(f: MethodFacts) -> Statement:
    name, version = f.software.split(" ", 1)
    text = inline(
        "Estimation used the Python package ",
        code(name),
        f" (version {version}; Python {f.python}), which follows the R package WeMix.",
    )
    return text, (), False


#: topic -> statement of one fit; the paragraph follows this order
TOPICS: dict[str, Callable[..., Statement | None]] = {
    "model": _model,
    "data": _data,
    "weights": _weights,
    "scaling": _scaling,
    "centering": _centering,
    "errors": _errors,
    "pv": _pv,
    "inference": _inference,
    "rows": _rows,
    "software": _software,
}
#: topics left out when every fit is at the default (said only to tell fits apart)
SILENT_DEFAULTS = {"centering", "pv"}


# -------------------------------------------------------------------------------------------------
# the paragraph


def _lower_first(content: Inline) -> Inline:
    """The text with its first letter in lower case (after "In Model 1, ")."""
    first = content[0]
    if first.style or len(first.text) < 2 or not first.text[1].islower():
        return content
    return (Span(first.text[0].lower() + first.text[1:]), *content[1:])


def _merge(topic: str, statements: list[Statement | None], names: Sequence[str]) -> list[Sentence]:
    present = [(s, n) for s, n in zip(statements, names, strict=True) if s is not None]
    if not present:
        return []
    texts = {text_of(s[0]) for s, _ in present}
    if len(texts) == 1 and len(present) == len(names):
        content, refs, default = present[0][0]
        if default and topic in SILENT_DEFAULTS:
            return []
        return [Sentence(topic, content, refs)]
    groups: dict[str, tuple[Statement, list[str]]] = {}
    for statement, name in present:
        key = text_of(statement[0])
        groups.setdefault(key, (statement, []))[1].append(name)
    out = []
    for (content, refs, _), members in groups.values():
        lead = inline("In ", _names(members), ", ")
        out.append(Sentence(topic, inline(lead, _lower_first(content)), refs))
    return out


def methods_sentences(facts: Sequence[MethodFacts], names: Sequence[str] | None = None) -> list[Sentence]:
    """The sentences of the methods paragraph of one or several fits.

    Parameters
    ----------
    facts
        The :class:`~wemix_nb.display.report.facts.MethodFacts` of each fit.
    names
        The fits' names (default ``"Model 1"``, ``"Model 2"``, ...).

    Returns
    -------
    list of Sentence
        In the order of :data:`TOPICS`; a topic on which the fits differ gives one sentence per
        group of fits that agree, each led by their names.
    """
    facts = list(facts)
    names = list(names) if names is not None else [f"Model {i + 1}" for i in range(len(facts))]
    sentences: list[Sentence] = []
    for topic, state in TOPICS.items():
        merged = _merge(topic, [state(f) for f in facts], names)
        if topic == "model" and len(facts) > 1 and len(merged) == 1:  # one sentence for them all
            merged = _merge(topic, [_model(f, "Each model") for f in facts], names)
        sentences += merged
    return sentences


def methods_paragraph(facts: Sequence[MethodFacts], names: Sequence[str] | None = None) -> Inline:
    """The methods paragraph as one styled text (sentences joined by spaces)."""
    parts: list = []
    for i, sentence in enumerate(methods_sentences(facts, names)):
        parts += [" " if i else "", sentence.content]
    return inline(*parts)


def references(sentences: Sequence[Sentence], extra: Sequence[str] = ()) -> list[str]:
    """The APA 7 entries of the works cited by ``sentences`` (and ``extra`` keys), alphabetically;
    italics are marked ``*...*``."""
    keys = {key for s in sentences for key in s.refs} | set(extra)
    return [REFERENCES[k] for k in sorted(keys)]


def reference_inline(entry: str) -> Inline:
    """A reference entry as styled text (its ``*...*`` runs in italics)."""
    parts = entry.split("*")
    return inline(*[italic(p) if i % 2 else p for i, p in enumerate(parts)])
