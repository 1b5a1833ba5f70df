"""Import every module of the hypercare package on its own, to catch import cycles.

A cycle between two modules often works in the order the application happens to import them
and breaks when a test, a script or a new caller imports the other one first. This script
imports each module as the first hypercare module of its process, so every order is tried:

    .venv/bin/python scripts/check_imports.py [--jobs N] [--all | --fresh] [--timeout S]

Each module is imported in a process of its own, at most ``--jobs`` at a time, forked from
one in which the third-party libraries hypercare uses (pydantic, SQLAlchemy, FastAPI, ...)
are already imported but no hypercare module is. Only a module that can reach an import
cycle can fail in one order and not in another, so by default the script first reads every
module's top-level imports (``if TYPE_CHECKING:`` blocks and function bodies left out),
finds the cycles, and imports alone only the modules from which a cycle can be reached; the
others are imported together in one more forked process. ``--all`` imports every module
alone; ``--fresh`` starts a new interpreter per module (``python -c "import hypercare.x"``),
slowest, with nothing preloaded and nothing skipped.

It also checks the layering the package relies on: a domain that must not depend on
another does not import it, in any import statement of its modules (function bodies and
``if TYPE_CHECKING:`` blocks included). The rules are `FORBIDDEN` (the triage domain is
assembled with feedback and detection by the composition root, never imports them); more
with ``--forbid importer=imported`` (module or package names, repeatable).

Prints one line per module that failed to import, with the last line of its traceback, and
one per forbidden import, and exits with status 1 if there were any; 0 otherwise.

Not imported: ``__main__`` modules (``hypercare.__main__`` runs the CLI) and the Alembic
scripts under ``store/migrations`` (Alembic loads them from files, not by import).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import multiprocessing
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SKIPPED_DIRS = frozenset({"migrations"})

# (importer, imported): no module under the first imports one under the second
FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("hypercare.triage", "hypercare.feedback"),
    ("hypercare.triage", "hypercare.detection"),
)


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds it without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: package {package!r} is not importable from {sys.executable}")
    return Path(next(iter(spec.submodule_search_locations)))


def module_names(package: str, root: Path) -> Iterator[str]:
    """Every importable module under `root`, packages included, in a stable order."""
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in SKIPPED_DIRS for part in rel.parts[:-1]):
            continue
        parts = [package, *rel.parts[:-1]]
        if rel.name != "__init__.py":
            parts.append(rel.stem)
        if parts[-1] != "__main__" and all(p.isidentifier() for p in parts):
            yield ".".join(parts)


def _module_file(root: Path, package: str, name: str) -> Path:
    parts = name.split(".")[1:]
    as_package = root.joinpath(*parts, "__init__.py")
    return as_package if as_package.exists() else root.joinpath(*parts).with_suffix(".py")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue  # runs when called, not on import
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _top_level_imports(node.orelse)
        else:
            for attr in ("body", "orelse", "finalbody"):
                inner = getattr(node, attr, None)
                if isinstance(inner, list):
                    yield from _top_level_imports([n for n in inner if isinstance(n, ast.stmt)])
            for handler in getattr(node, "handlers", ()):
                yield from _top_level_imports(handler.body)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(package: str, root: Path, names: list[str]) -> dict[str, set[str]]:
    """Which modules of the package each module takes names from when it is imported
    (statically): ``from a.b import c`` depends on the module a.b.c if there is one, else
    on a.b; ``import a.b.c`` on a.b.c. The parent packages every import also runs are not
    edges here (see `cycle_reachers`): they run first, they are not read half-done."""
    known = set(names)
    graph: dict[str, set[str]] = {}
    for name in names:
        path = _module_file(root, package, name)
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_bytes(), str(path)).body):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
                continue
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                base_parts = here[: len(here) - node.level + 1]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                edges.add(sub if sub in known else base)
        graph[name] = {e for e in edges if e in known}
    return graph


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _all_imports(package: str, root: Path, name: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) of every import statement in the module, wherever it is."""
    path = _module_file(root, package, name)
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                base_parts = here[: len(here) - node.level + 1]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def forbidden_imports(
    package: str, root: Path, names: list[str], rules: list[tuple[str, str]]
) -> list[str]:
    """One line per import that breaks a rule: ``module:line imports x (importer must not
    import imported)``."""
    found = []
    for name in names:
        applies = [(a, b) for a, b in rules if _under(name, a)]
        if not applies:
            continue
        for line, imported in _all_imports(package, root, name):
            for importer, banned in applies:
                if _under(imported, banned):
                    found.append(
                        f"{name}:{line}: imports {imported} ({importer} must not import {banned})"
                    )
    return found


def cycle_reachers(graph: dict[str, set[str]]) -> set[str]:
    """The modules from which an import cycle of `graph` can be reached (the cycles' own
    included), through their imports or the parent packages an import runs first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cyclic: set[str] = set()

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                cyclic.update(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            connect(v)
    reachers = set(cyclic)
    runs = {v: graph[v] | {p for p in _parents(v) if p in graph} for v in graph}
    changed = True
    while changed:
        changed = False
        for v, targets in runs.items():
            if v not in reachers and targets & reachers:
                reachers.add(v)
                changed = True
    return reachers


def _ours(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def third_party_modules(package: str, names: list[str], timeout: float) -> list[str]:
    """What importing the whole package loads besides the package itself (fresh process)."""
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception:\n"
        "        pass\n"
        "print('\\n'.join(m for m in sorted(sys.modules)"
        f" if m != {package!r} and not m.startswith({package + '.'!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
    )
    return out.stdout.split()


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def _import_in_child(names: list[str], package: str) -> dict[str, str]:
    """Runs in a forked process: import `names` in turn; the error line of each that fails."""
    loaded = [m for m in sys.modules if _ours(m, package)]
    if loaded:  # the parent must not have imported any of the package
        return {names[0]: f"{loaded[0]} was already imported before the check"}
    failures = {}
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:  # any failure to import, SystemExit included, is the finding
            failures[name] = _last_line(traceback.format_exc())
    return failures


def check_forked(
    package: str, names: list[str], jobs: int, timeout: float, alone: set[str]
) -> dict[str, str]:
    """Import each module of `alone` as the first of its own forked process, and the rest
    together in one more."""
    for module in third_party_modules(package, names, timeout):
        try:
            importlib.import_module(module)
        except Exception:  # preloading is only a speed-up; the child will report it
            continue
    ctx = multiprocessing.get_context("fork")
    failures: dict[str, str] = {}
    groups = [[name] for name in names if name in alone]
    rest = [name for name in names if name not in alone]
    if rest:
        groups.append(rest)
    # One fresh fork per group (maxtasksperchild=1), so no group sees another's imports.
    with ctx.Pool(processes=jobs, maxtasksperchild=1) as pool:
        pending = [
            (group, pool.apply_async(_import_in_child, (group, package))) for group in groups
        ]
        for group, result in pending:
            try:
                failures.update(result.get(timeout=timeout * len(group)))
            except multiprocessing.TimeoutError:
                failures[group[0]] = f"import did not finish within {timeout:g} s"
    return failures


def check_fresh(package: str, names: list[str], jobs: int, timeout: float) -> dict[str, str]:
    def one(name: str) -> tuple[str, str | None]:
        try:
            out = subprocess.run(
                [sys.executable, "-c", f"import {name}"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return name, f"import did not finish within {timeout:g} s"
        return name, None if out.returncode == 0 else _last_line(out.stderr)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return {name: err for name, err in pool.map(one, names) if err is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "--jobs", type=int, default=min(4, os.cpu_count() or 1), help="processes at once"
    )
    ap.add_argument("--all", action="store_true", help="import every module alone")
    ap.add_argument("--fresh", action="store_true", help="a new interpreter per module")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per import")
    ap.add_argument("--package", default="hypercare", help="the package to check")
    ap.add_argument(
        "--forbid",
        action="append",
        default=[],
        metavar="IMPORTER=IMPORTED",
        help="no module under IMPORTER may import one under IMPORTED (repeatable)",
    )
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    rules = list(FORBIDDEN)
    for rule in args.forbid:
        importer, sep, imported = rule.partition("=")
        if not sep or not importer or not imported:
            ap.error(f"--forbid {rule!r}: write it as importer=imported, e.g. a.b=a.c")
        rules.append((importer, imported))
    root = package_dir(args.package)
    names = list(module_names(args.package, root))
    broken = forbidden_imports(args.package, root, names, rules)
    for line in broken:
        print(line)
    fresh = args.fresh or "fork" not in multiprocessing.get_all_start_methods()
    if fresh:
        failures = check_fresh(args.package, names, args.jobs, args.timeout)
        mode = "each alone, fresh interpreters"
    else:
        alone = set(names) if args.all else cycle_reachers(import_graph(args.package, root, names))
        failures = check_forked(args.package, names, args.jobs, args.timeout, alone)
        mode = f"{len(alone)} alone, forked processes"
    for name in names:
        if name in failures:
            print(f"{name}: {failures[name]}")
    print(
        f"{len(names) - len(failures)} of {len(names)} modules import on their own ({mode})",
        file=sys.stderr,
    )
    if broken:
        print(f"{len(broken)} forbidden import(s)", file=sys.stderr)
    return 1 if failures or broken else 0


if __name__ == "__main__":
    sys.exit(main())
