"""Imports every module's models so Base.metadata is complete (Alembic autogenerate/check).

Add one line here when a module gains a models.py.
"""

from console import deployment  # noqa: F401
from console.audit import models as audit_models  # noqa: F401
from console.db import Base
from console.flows import models as flow_models  # noqa: F401

metadata = Base.metadata
