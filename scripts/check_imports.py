"""Import every module of the hypercare package on its own, to catch import cycles.

A cycle between two modules often works in the order the application happens to import them
and breaks when a test, a script or a new caller imports the other one first. This script
imports each module as the first hypercare module of its process, so every order is tried:

    .venv/bin/python scripts/check_imports.py [--jobs N] [--fresh] [--timeout S] [--package P]

Each module is imported in a process of its own, at most ``--jobs`` at a time. By default the
process is forked from one in which the third-party libraries hypercare uses (pydantic,
SQLAlchemy, FastAPI, ...) are already imported but no hypercare module is: that keeps a full
run to seconds on a small machine and still imports every hypercare module in a fresh order.
``--fresh`` starts a new interpreter per module instead (``python -c "import hypercare.x"``),
slower but with nothing preloaded.

Prints one line per module that failed to import, with the last line of its traceback, and
exits with status 1 if any did; 0 otherwise.

Not imported: ``__main__`` modules (``hypercare.__main__`` runs the CLI) and the Alembic
scripts under ``store/migrations`` (Alembic loads them from files, not by import).
"""

from __future__ import annotations

import argparse
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


def _import_in_child(name: str, package: str) -> str | None:
    """Runs in a forked process: import `name`; None if it worked, else the error line."""
    loaded = [m for m in sys.modules if _ours(m, package)]
    if loaded:  # the parent must not have imported any of the package
        return f"{loaded[0]} was already imported before the check"
    try:
        importlib.import_module(name)
    except BaseException:  # any failure to import, SystemExit included, is the finding
        return _last_line(traceback.format_exc())
    return None


def check_forked(package: str, names: list[str], jobs: int, timeout: float) -> dict[str, str]:
    for module in third_party_modules(package, names, timeout):
        try:
            importlib.import_module(module)
        except Exception:  # preloading is only a speed-up; the child will report it
            continue
    ctx = multiprocessing.get_context("fork")
    failures: dict[str, str] = {}
    # One fresh fork per module (maxtasksperchild=1), so no module sees another's imports.
    with ctx.Pool(processes=jobs, maxtasksperchild=1) as pool:
        pending = {name: pool.apply_async(_import_in_child, (name, package)) for name in names}
        for name, result in pending.items():
            try:
                error = result.get(timeout=timeout)
            except multiprocessing.TimeoutError:
                error = f"import did not finish within {timeout:g} s"
            if error is not None:
                failures[name] = error
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
    ap.add_argument("--fresh", action="store_true", help="a new interpreter per module")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per import")
    ap.add_argument("--package", default="hypercare", help="the package to check")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    names = list(module_names(args.package, package_dir(args.package)))
    fresh = args.fresh or "fork" not in multiprocessing.get_all_start_methods()
    check = check_fresh if fresh else check_forked
    failures = check(args.package, names, args.jobs, args.timeout)
    for name in names:
        if name in failures:
            print(f"{name}: {failures[name]}")
    mode = "fresh interpreters" if fresh else "forked processes"
    print(
        f"{len(names) - len(failures)} of {len(names)} modules import on their own ({mode})",
        file=sys.stderr,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
