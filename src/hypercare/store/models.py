"""Every table, gathered in one metadata for Alembic."""

from hypercare.auth import models as _auth  # noqa: F401
from hypercare.detection import models as _detection  # noqa: F401
from hypercare.feedback import models as _feedback  # noqa: F401
from hypercare.response import models as _response  # noqa: F401
from hypercare.status import models as _status  # noqa: F401
from hypercare.store.base import Base
from hypercare.telemetry import models as _telemetry  # noqa: F401
from hypercare.triage import models as _triage  # noqa: F401
from hypercare.web import models as _web  # noqa: F401

metadata = Base.metadata
