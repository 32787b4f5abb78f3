"""Kill switch settings, read with the same rules as ``console.settings``.

``FLOWS_REQUIRE_APPROVAL``: flows whose switch needs a second person (four eyes), e.g.
``decisioning,ledger_posting``; ``none`` or empty (default) for none, ``all`` for every flow.
A change to such a flow is a request that another on-call engineer approves or rejects.
``FLOWS_APPROVAL_MINUTES``: how long a request waits for approval before it expires (30).

Kept import-free of ``console.settings`` at module level: that module imports this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_APPROVAL_MINUTES = 30


@dataclass(frozen=True)
class FlowsSettings:
    # Flow values (console.flows.services.Flow) that need a second person's approval.
    require_approval: frozenset[str] = frozenset()
    approval_minutes: int = DEFAULT_APPROVAL_MINUTES

    def needs_approval(self, flow) -> bool:
        return str(flow) in self.require_approval

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FlowsSettings:
        from console.flows.services import Flow
        from console.settings import ConfigError, _int, _read

        raw = (_read(env, "FLOWS_REQUIRE_APPROVAL") or "").replace(",", " ").split()
        names: set[str] = set()
        if [item.lower() for item in raw] == ["all"]:
            names = {flow.value for flow in Flow}
        elif [item.lower() for item in raw] != ["none"]:
            known = {flow.value for flow in Flow}
            for item in raw:
                if item not in known:
                    raise ConfigError(f"FLOWS_REQUIRE_APPROVAL: {item!r} is not a flow (one of: "
                                      f"{', '.join(sorted(known))}; or all, none)")
                names.add(item)
        return cls(require_approval=frozenset(names),
                   approval_minutes=_int(env, "FLOWS_APPROVAL_MINUTES", DEFAULT_APPROVAL_MINUTES,
                                         minimum=1, maximum=24 * 60))
