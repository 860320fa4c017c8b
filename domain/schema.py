"""Every table of the store, imported in one place (for Alembic and for tests that list tables)."""

from domain import models as _core
from domain import process_starts as _starts  # noqa: F401
from domain.audit import models as _audit  # noqa: F401
from domain.capa import models as _capa  # noqa: F401
from domain.changes import models as _changes  # noqa: F401
from domain.quality import models as _quality  # noqa: F401
from domain.recalls import models as _recalls
from domain.tasks import models as _tasks

Base = _core.Base
metadata = Base.metadata

__all__ = ["Base", "_recalls", "_tasks", "metadata"]
