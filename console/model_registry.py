"""Imports every module's models so Base.metadata is complete (Alembic autogenerate/check).

Add one line here when a module gains a models.py.
"""

from console import deployment  # noqa: F401
from console.audit import models as audit_models  # noqa: F401
from console.auth import models as auth_models  # noqa: F401
from console.cards import models as card_models  # noqa: F401
from console.checks import models as check_models  # noqa: F401
from console.db import Base
from console.decisioning import models as decisioning_models  # noqa: F401
from console.flows import models as flow_models  # noqa: F401
from console.ingress import models as ingress_models  # noqa: F401
from console.keys import card_data_models  # noqa: F401
from console.keys import models as key_models  # noqa: F401
from console.ledger import models as ledger_models  # noqa: F401
from console.monitoring import models as monitoring_models  # noqa: F401
from console.pipeline import models as pipeline_models  # noqa: F401
from console.scheduler import models as scheduler_models  # noqa: F401
from console.transactions import models as transaction_models  # noqa: F401

metadata = Base.metadata
