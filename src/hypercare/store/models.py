"""Every table, gathered in one metadata for Alembic."""

from typing import Any

from hypercare.auth import models as _auth  # noqa: F401
from hypercare.comms import models as _comms  # noqa: F401
from hypercare.detection import models as _detection  # noqa: F401
from hypercare.feedback import models as _feedback  # noqa: F401
from hypercare.launch import models as _launch  # noqa: F401
from hypercare.response import models as _response  # noqa: F401
from hypercare.review import models as _review  # noqa: F401
from hypercare.status import models as _status  # noqa: F401
from hypercare.store.base import Base
from hypercare.telemetry import models as _telemetry  # noqa: F401
from hypercare.triage import models as _triage  # noqa: F401
from hypercare.web import models as _web  # noqa: F401

metadata = Base.metadata

# Objects migrations make by hand, outside the models: the knowledge base's full-text index
# (SQLite: the FTS5 table and its shadow tables; PostgreSQL: a GIN expression index).
UNMODELLED_PREFIXES = ("knowledge_fts", "ix_knowledge_docs_fts")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's autogenerate filter: leave the hand-made objects above alone."""
    return not (name or "").startswith(UNMODELLED_PREFIXES)
