"""Parsing of lme4-style model formulas.

The fixed part is handed to formulaic as a string; random-effect "bars" ``(expr | g)`` are cut out
first, because ``|`` means something else to formulaic.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from formulaic import Formula
from formulaic.transforms import TRANSFORMS

from wemix_nb.errors import FormulaError

#: the name formulaic gives the intercept column (and so the intercept's coefficient)
INTERCEPT = "Intercept"

# a name (not an attribute such as np.log), not called, not a keyword argument
_BARE_NAME = re.compile(r"(?<![\w.`])([A-Za-z_]\w*)(?![\w`])(?!\s*(?:[(.]|=(?!=)))")
_QUOTED = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"")


@dataclass(frozen=True)
class RandomBar:
    """One ``(expr | group)`` term.

    Attributes
    ----------
    expr
        The right-hand side of the random term, e.g. ``"1 + x"`` or ``"0 + x"``.
    group
        The grouping factor, as one or several column names joined by ``:``, e.g. ``"school:class"``.
    uncorrelated
        True for ``||`` bars: each column becomes its own bar (zero covariances).
    """

    expr: str
    group: str
    uncorrelated: bool = False


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part and random bars.

    Attributes
    ----------
    formula
        The formula as given.
    response
        The left-hand side as written (``"y"``, ``"log(y)"``, ``"cbind(k, n - k)"``).
    fixed
        The fixed part without its ``offset(...)`` terms, as formulaic reads it.
    bars
        The random-effect terms.
    offsets
        The expressions inside the fixed part's ``offset(...)`` terms (added to the linear
        predictor with coefficient 1).
    trials
        ``(successes, failures)`` expressions of a ``cbind(successes, failures)`` response (a
        binomial response with trials, as in lme4), else ``None``.
    """

    formula: str
    response: str
    fixed: str
    bars: tuple[RandomBar, ...]
    offsets: tuple[str, ...] = ()
    trials: tuple[str, str] | None = None

    @property
    def fixed_formula(self) -> str:
        """The fixed part with its response and offsets, as formulaic reads it (to list the
        columns used): ``"y ~ x1 + x2"``, ``"k + n ~ x1 + I(log(e))"``."""
        lhs = " + ".join(f"I({part})" for part in self.trials) if self.trials else self.response
        offsets = "".join(f" + I({expr})" for expr in self.offsets)
        return f"{lhs} ~ {self.fixed}{offsets}"

    @property
    def factors(self) -> list[str]:
        """The grouping factors of the bars, in formula order, each once."""
        return list(dict.fromkeys(bar.group for bar in self.bars))


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` where it is not inside parentheses or brackets."""
    parts, depth, start = [], 0, 0
    for pos, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"Unbalanced parentheses in formula term {text!r}.")
        elif char == sep and depth == 0:
            parts.append(text[start:pos])
            start = pos + 1
    if depth != 0:
        raise FormulaError(f"Unbalanced parentheses in {text!r}.")
    parts.append(text[start:])
    return [part.strip() for part in parts]


def _expand_group(group: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a:b", "a:b:c"]``; ``a:b`` and ``a`` stay as they are."""
    pieces = [piece.strip() for piece in group.split("/")]
    if any(not piece for piece in pieces):
        raise FormulaError(f"Empty grouping factor in random term '| {group}'.")
    return [":".join(pieces[: k + 1]) for k in range(len(pieces))]


def _parse_bar(term: str) -> list[RandomBar]:
    inner = term[1:-1].strip()
    uncorrelated = "||" in inner
    expr, _, group = inner.partition("||" if uncorrelated else "|")
    expr, group = expr.strip(), group.strip()
    if not expr or not group:
        raise FormulaError(f"Random term {term!r} needs an expression and a grouping factor: (expr | g).")
    if "|" in group:
        raise FormulaError(f"Random term {term!r} has more than one '|'.")
    return [RandomBar(expr, g, uncorrelated) for g in _expand_group(group)]


def _is_bar(term: str) -> bool:
    if not (term.startswith("(") and term.endswith(")")):
        return False
    # the outer parentheses must enclose the whole term, and a '|' must sit at depth one
    depth = 0
    for pos, char in enumerate(term):
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and pos < len(term) - 1:
            return False
    return "|" in term


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4-style formula into its response, fixed part and random bars.

    Parameters
    ----------
    formula
        For example ``"y ~ x1 + x2 + (1 + x1 | school) + (1 | school:class)"``.

    Returns
    -------
    ParsedFormula
    """
    if not isinstance(formula, str):
        raise FormulaError(
            f"The formula must be a string such as 'y ~ x + (1|g)', got {type(formula).__name__}."
        )
    lhs, tilde, rhs = formula.partition("~")
    if not tilde or not lhs.strip() or not rhs.strip():
        raise FormulaError(
            f"The formula {formula!r} needs a response and a right-hand side: 'y ~ x + (1|g)'."
        )
    terms = _split_top_level(rhs, "+")
    bars: list[RandomBar] = []
    fixed_terms: list[str] = []
    offsets: list[str] = []
    for term in terms:
        if not term:
            raise FormulaError(f"Empty term in formula {formula!r}.")
        if _is_bar(term):
            bars.extend(_parse_bar(term))
        elif "|" in term:
            raise FormulaError(
                f"Random term {term!r} must be written in its own parentheses, e.g. '(1 + x | g)'."
            )
        elif (inner := _call_argument(term, "offset")) is not None:
            offsets.append(inner)
        else:
            fixed_terms.append(term)
    if not bars:
        raise FormulaError(
            f"The formula {formula!r} has no random-effect term such as '(1 | group)'; "
            "wemix_nb fits mixed models only."
        )
    fixed = " + ".join(fixed_terms) if fixed_terms else "1"
    response = lhs.strip()
    return ParsedFormula(
        formula=formula,
        response=response,
        fixed=fixed,
        bars=tuple(bars),
        offsets=tuple(offsets),
        trials=_cbind(response),
    )


def _call_argument(term: str, function: str) -> str | None:
    """The argument of ``function(...)`` when ``term`` is exactly that call, else None."""
    match = re.fullmatch(rf"{function}\s*\((.*)\)", term.strip(), flags=re.S)
    if match is None or _split_top_level(match.group(1), ",") != [match.group(1).strip()]:
        # not the whole term (e.g. offset(a) * b), or several arguments
        if match is not None:
            raise FormulaError(f"{function}() takes one expression; got {term!r}.")
        return None
    inner = match.group(1).strip()
    if not inner:
        raise FormulaError(f"{term!r} needs an expression, e.g. {function}(log(exposure)).")
    return inner


def _cbind(response: str) -> tuple[str, str] | None:
    """``(successes, failures)`` of a ``cbind(successes, failures)`` response, else None."""
    match = re.fullmatch(r"cbind\s*\((.*)\)", response, flags=re.S)
    if match is None:
        return None
    parts = _split_top_level(match.group(1), ",")
    if len(parts) != 2 or not all(parts):
        raise FormulaError(
            f"The response {response!r} must be cbind(successes, failures), two expressions, "
            "e.g. cbind(passed, n - passed)."
        )
    return parts[0], parts[1]


def bare_reserved_names(expression: str) -> list[str]:
    """Names written without backticks that formulaic does not read as data columns.

    formulaic resolves its own functions and modules (``scale``, ``center``, ``log``, ``C``,
    ``I``, ``poly``, ``np``...) before the data's columns, and names the intercept column
    ``Intercept``; a data column with one of these names must be written in backticks
    (`` `scale` ``, `` `Intercept` ``). Calls (``scale(x)``) and attributes (``np.log``) are fine.

    Returns
    -------
    list of str
        The reserved names used bare, each once, in order of appearance.
    """
    plain = _QUOTED.sub(" ", expression)
    names = [m.group(1) for m in _BARE_NAME.finditer(plain)]
    return list(dict.fromkeys(n for n in names if n in TRANSFORMS or n == INTERCEPT))


def check_reserved_names(expression: str, columns, *, response: bool = False) -> None:
    """Refuse names of the formula language used for data columns (see :func:`bare_reserved_names`).

    Parameters
    ----------
    expression
        A formula or a part of it.
    columns
        The data's column names.
    response
        True if ``expression`` is the response, which may be a column named ``Intercept``.

    Raises
    ------
    FormulaError
        For a bare name that is also a data column (it must be written in backticks), or a
        function of the formula language written as a term of its own (``y ~ log + x``).
    """
    terms = {term.strip() for part in expression.split("~") for term in _split_top_level(part, "+")}
    for name in bare_reserved_names(expression):
        if name == INTERCEPT and response:
            continue
        if name in columns and name == INTERCEPT:
            raise FormulaError(
                f"Column {name!r} has the name formulaic gives the intercept, so a bare {name} in "
                f"the formula is ambiguous. Write the column in backticks, `{name}` (its "
                f"coefficient is then named '`{name}`'); the intercept itself is included by "
                "default ('0 + ...' removes it)."
            )
        if name in columns:
            raise FormulaError(
                f"Column {name!r} has the name of a function of the formula language, and a bare "
                f"{name} in the formula means that function. Write the column in backticks, `{name}`."
            )
        if name in terms and name != INTERCEPT:
            raise FormulaError(
                f"{name!r} is a function of the formula language, not a column of the data; apply "
                f"it to a column, e.g. {name}(x)."
            )


def variables_of(expression: str) -> list[str]:
    """The data columns a formula expression uses, as formulaic reads it (sorted).

    Backticked names (`` `x.1` ``, `` `my var` ``) come back without their backticks.

    Raises
    ------
    FormulaError
        If formulaic cannot parse the expression.
    """
    return list(_required_variables(expression))


@functools.lru_cache(maxsize=512)
def _required_variables(expression: str) -> tuple[str, ...]:
    # parsing is pure and repeated for every fit of the same formula (plausible values, fit_many)
    # Backticked names (`x.1`, `my var`) are swapped for plain placeholders first: formulaic's
    # list of required variables reads `x.1` as attribute access of `x`.
    quoted: dict[str, str] = {}

    def protect(match: re.Match) -> str:
        placeholder = f"_wemix_quoted_{len(quoted)}_"
        quoted[placeholder] = match.group(1)
        return placeholder

    plain = re.sub(r"`([^`]+)`", protect, expression)
    try:
        names = Formula(plain).required_variables
    except Exception as exc:  # formulaic's parse errors have many types
        raise FormulaError(f"Cannot parse {expression!r}: {exc}") from exc
    return tuple(sorted(quoted.get(str(name), str(name)) for name in names))
