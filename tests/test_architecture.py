"""The package's structure: stage packages imported downwards only, no import cycles, the core
never importing the notebook layer, short modules.

Imports are read from the source (module level and inside functions, but not ``TYPE_CHECKING``
blocks). The one permitted upward reach is a lazy import of :mod:`wemix_nb.display` inside a
function of the core: the ``_repr_html_``/``plot_*``/``to_gt`` hooks through which results reach
the notebook layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wemix_nb"

# Stages from the bottom up: a module may import its own stage and the stages below it.
LAYERS = [
    ("wemix_nb.errors", "wemix_nb._progress", "wemix_nb.datasets"),
    ("wemix_nb.model",),
    ("wemix_nb.estimation",),
    ("wemix_nb.options",),
    ("wemix_nb.results",),
    ("wemix_nb.pipeline",),
    ("wemix_nb.distributed",),
    ("wemix_nb.survey",),
    ("wemix_nb.api",),
    ("wemix_nb.display",),
    ("wemix_nb.accessor", "wemix_nb.__main__", "wemix_nb"),
]
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported wemix_nb module, whether the import is inside a function) of one file."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            lazy = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("wemix_nb"):
                    found.append((target, in_function))
                    # `from wemix_nb.x import y` may import the submodule wemix_nb.x.y
                    found.extend(
                        (f"{target}.{alias.name}", in_function)
                        for alias in child.names
                        if _exists(f"{target}.{alias.name}")
                    )
            elif isinstance(child, ast.Import):
                found.extend(
                    (alias.name, in_function) for alias in child.names if alias.name.startswith("wemix_nb")
                )
            visit(child, lazy)

    visit(ast.parse(path.read_text()), False)
    return found


def _exists(module: str) -> bool:
    path = PACKAGE.parent / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _layer(module: str) -> int:
    best, rank = -1, None
    for position, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), position
    assert rank is not None, f"{module} belongs to no stage in LAYERS"
    return rank


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        edges = graph.setdefault(module, set())
        for target, lazy in _imports(path):
            if target == module:
                continue
            if lazy and target.startswith("wemix_nb.display") and not module.startswith("wemix_nb.display"):
                continue  # a notebook hook: the one permitted upward reach
            edges.add(target)
    return graph


def test_imports_go_down_the_stages_only():
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, "imports reaching a later stage:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target] if target in stack else [node, target])
            elif target not in state:
                walk(target, [*stack, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_core_never_imports_the_notebook_layer_at_import_time():
    offenders = [
        f"{_module_name(path)} -> {target}"
        for path in PACKAGE.rglob("*.py")
        if not _module_name(path).startswith("wemix_nb.display")
        for target, lazy in _imports(path)
        if target.startswith("wemix_nb.display") and not lazy
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_short(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines (limit {MAX_LINES}): split it by job"


def test_families_keeps_its_old_import_path():
    import importlib

    import wemix_nb
    from wemix_nb.estimation import families

    assert importlib.import_module("wemix_nb.families") is families is wemix_nb.families
    from wemix_nb.families import Binomial, get_family  # the path of earlier releases

    assert get_family("binomial").__class__ is Binomial
