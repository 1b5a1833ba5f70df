"""The migrations build exactly the schema the models describe, on both stores."""

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import hypercare.store
from hypercare.store.models import include_name, metadata
from hypercare.telemetry.callkeys import call_key


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": False, "include_name": include_name}
    )
    return list(compare_metadata(context, metadata))


async def test_no_drift_between_models_and_migrations(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


VERSIONS = Path(hypercare.store.__file__).parent / "migrations" / "versions"
# Column types used in DDL only; every other import of live code is frozen into the revision.
ALLOWED_LIVE_IMPORTS = {"hypercare.store.base"}


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _load_revision(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_revision_{name}", VERSIONS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_revisions_do_not_import_live_code() -> None:
    revisions = sorted(VERSIONS.glob("0*.py"))
    assert len(revisions) >= 7
    for path in revisions:
        live = {
            m for m in _imported_modules(path) if m == "hypercare" or m.startswith("hypercare.")
        }
        assert live <= ALLOWED_LIVE_IMPORTS, f"{path.name} imports live code: {sorted(live)}"


@pytest.mark.parametrize("name", ["0004_telemetry_keys", "0005_telemetry_segments"])
def test_frozen_call_key_matches_the_keys_stored_today(name: str) -> None:
    frozen = _load_revision(name)._call_key
    for ident, ts in [
        ("req-00128450", 1795826543.25),
        ("4bf92f3577b34da6a3ce929d0e0e4736", 0.0),
        ("", 4102444799.9),
        ("caf\u00e9-\ud800", 1700000000.0),  # non-ASCII and a lone surrogate
    ]:
        assert frozen(ident, ts) == call_key(ident, ts)
