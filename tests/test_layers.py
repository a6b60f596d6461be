"""The package's layering, read from the source (every import counts: module level, inside a
function, and under ``TYPE_CHECKING``): no import circle anywhere in ``src/mixkit``, and the
engine never imports the command layer (``docs/engine.md``, "Where things live")."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mixkit"
# the command layer: which arms run, how, and what is reported (the engine knows none of it)
COMMAND_LAYER = {"mixkit.cli", "mixkit.commands", "mixkit.command", "mixkit.orchestrate",
                 "mixkit.resume_checks", "mixkit.summary", "mixkit.report", "mixkit.plots",
                 "mixkit.run_reader", "mixkit.catalog", "mixkit.config", "mixkit.options",
                 "mixkit.experiment", "mixkit.methods", "mixkit.runio"}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The mixkit modules ``path`` imports (``from mixkit.x import y``: ``mixkit.x.y`` where
    that is a module, else ``mixkit.x``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mixkit")}
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("mixkit"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in modules else node.module)
    return out


def _graph() -> dict[str, set[str]]:
    paths = {_module(p): p for p in SRC.rglob("*.py")}
    modules = set(paths)
    return {m: _imports(p, modules) - {m} for m, p in paths.items()}


def test_no_import_circles() -> None:
    graph = _graph()
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if n not in graph or n == "mixkit" or n.startswith("mixkit") and n + "." in m:
                continue                 # a package's __init__ re-exporting its own modules
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_run_io_imports_no_method_and_no_command() -> None:
    """``runio`` (run directory, files, live view, standard callbacks, loggers) sits on the
    engine: it knows no method and nothing of the command or report layer."""
    upper = tuple(c for c in COMMAND_LAYER if c != "mixkit.runio")
    bad = [(m, n) for m, deps in _graph().items() if _within(m, ("mixkit.runio",))
           for n in deps if _within(n, upper)]
    assert not bad, bad


def test_the_engine_imports_nothing_from_the_command_layer() -> None:
    bad = [(m, n) for m, deps in _graph().items() if m.startswith("mixkit.engine")
           for n in deps if any(n == c or n.startswith(c + ".") for c in COMMAND_LAYER)]
    assert not bad, bad


def test_the_checker_sees_a_circle_and_a_layer_breach(tmp_path: Path) -> None:
    """The two checks are not vacuous: the import parser finds function-level and
    TYPE_CHECKING imports (the kinds a circle hides in)."""
    mod = tmp_path / "m.py"
    mod.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    from mixkit.orchestrate import run\n"
                   "def f():\n    from mixkit.engine import loop\n")
    found = _imports(mod, {"mixkit.engine.loop", "mixkit.orchestrate"})
    assert found == {"mixkit.orchestrate", "mixkit.engine.loop"}


# the lowest layers: the data core and the model core know no engine, method or command
LOW_LAYERS = {"mixkit.data": ("mixkit.errors", "mixkit.data", "mixkit.models"),
              "mixkit.models": ("mixkit.errors", "mixkit.models", "mixkit.data")}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_data_and_models_import_only_errors_and_each_other() -> None:
    bad = [(m, n) for m, deps in _graph().items() for low, allowed in LOW_LAYERS.items()
           if _within(m, (low,)) for n in deps if not _within(n, allowed)]
    assert not bad, bad


def test_methods_import_nothing_of_the_command_or_report_layer() -> None:
    upper = tuple(c for c in COMMAND_LAYER if c != "mixkit.methods")
    bad = [(m, n) for m, deps in _graph().items() if _within(m, ("mixkit.methods",))
           for n in deps if _within(n, upper)]
    assert not bad, bad


def _package(module: str) -> str:
    """``mixkit.data.core`` -> ``mixkit.data``; a top-level module is its own node."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_package_level_circle() -> None:
    """Between packages (``data``, ``models``, ``engine``, ``methods``, and each top-level
    module): a circle there (``data -> config -> engine -> data``) is a layering breach even
    when no two modules import each other."""
    graph: dict[str, set[str]] = {}
    for m, deps in _graph().items():
        graph.setdefault(_package(m), set()).update(
            _package(n) for n in deps if _package(n) != _package(m) and n != "mixkit")
    state: dict[str, int] = {}

    def visit(p: str, path: list[str]) -> None:
        state[p] = 1
        for n in sorted(graph.get(p, ())):
            if state.get(n) == 1:
                raise AssertionError("package circle: " + " -> ".join(
                    path[path.index(n):] + [p, n]))
            if n not in state:
                visit(n, path + [p])
        state[p] = 2

    for p in sorted(graph):
        if p not in state:
            visit(p, [])


def test_no_function_below_the_command_layer_takes_the_cli_config() -> None:
    """The data core, model core, engine and methods take typed, explicit arguments: no
    parameter named ``cfg``/``config`` (how the command layer's config object travels), and no
    annotation naming the command line's config classes."""
    below = ("mixkit.data", "mixkit.models", "mixkit.engine", "mixkit.methods", "mixkit.runio")
    bad = []
    for path in SRC.rglob("*.py"):
        if not _within(_module(path), below):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                for a in args:
                    note = ast.unparse(a.annotation) if a.annotation is not None else ""
                    if a.arg in ("cfg", "config") or "Config" in note:
                        bad.append(f"{_module(path)}.{node.name}({a.arg}: {note})")
    assert not bad, bad
