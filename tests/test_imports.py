"""Every module of the package imports on its own (scripts/check_imports.py), and the check
really fails, naming the module and the error, when a package has an import cycle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_imports.py"


def run_check(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--jobs", "2", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_every_hypercare_module_imports_alone() -> None:
    out = run_check()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "modules import on their own" in out.stderr


def write_cyclic_package(root: Path) -> None:
    # `cyc.root` embeds a section from `cyc.part`, and `cyc.part` builds on a name from
    # `cyc.root`: importing `cyc.root` first works, importing `cyc.part` first does not.
    pkg = root / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "root.py").write_text("BASE = 1\nfrom cyc.part import SECTION\n")
    (pkg / "part.py").write_text("from cyc.root import BASE\nSECTION = BASE + 1\n")
    (pkg / "__main__.py").write_text("raise SystemExit('__main__ must not be imported')\n")


def test_a_cycle_is_reported_with_module_and_error(tmp_path: Path) -> None:
    write_cyclic_package(tmp_path)
    for mode, alone in (([], "2 alone"), (["--all"], "3 alone"), (["--fresh"], "each alone")):
        out = run_check("--package", "cyc", *mode, pythonpath=tmp_path)
        assert out.returncode == 1, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("cyc.part: ImportError: cannot import name 'SECTION'")
        assert f"2 of 3 modules import on their own ({alone}" in out.stderr


def test_modules_outside_cycles_are_imported_together(tmp_path: Path) -> None:
    # `cyc.user` only reaches the cycle through `cyc.part`, `cyc.leaf` reaches none: the
    # static pass imports alone only what can reach the cycle
    write_cyclic_package(tmp_path)
    (tmp_path / "cyc" / "leaf.py").write_text("import json\nVALUE = json.dumps(1)\n")
    (tmp_path / "cyc" / "user.py").write_text(
        "from cyc import leaf\nfrom cyc.part import SECTION\n"
    )
    out = run_check("--package", "cyc", pythonpath=tmp_path)
    assert out.returncode == 1
    assert sorted(line.split(":")[0] for line in out.stdout.splitlines()) == [
        "cyc.part",
        "cyc.user",
    ]
    assert "3 of 5 modules import on their own (3 alone" in out.stderr


def test_a_missing_package_is_a_clear_error(tmp_path: Path) -> None:
    out = run_check("--package", "no_such_package_here", pythonpath=tmp_path)
    assert out.returncode == 1
    assert "package 'no_such_package_here' is not importable" in out.stderr


def test_a_forbidden_import_is_reported_with_module_and_line(tmp_path: Path) -> None:
    pkg = tmp_path / "lay"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "high.py").write_text("VALUE = 1\n")
    # imported in a function body: never run on import, still a dependency
    (pkg / "low" / "part.py").write_text(
        "def f():\n    from lay.high import VALUE\n    return VALUE\n"
    )
    out = run_check("--package", "lay", "--forbid", "lay.low=lay.high", pythonpath=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "lay.low.part:2: imports lay.high.VALUE (lay.low must not import lay.high)"
    ]
    allowed = run_check("--package", "lay", "--forbid", "lay.high=lay.low", pythonpath=tmp_path)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
