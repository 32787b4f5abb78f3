"""Who may do what. One Permission enum, one role map, one decorator; default deny.

Every view declares its permission with ``@require(...)`` or ``@public``; ``init_app`` refuses any
request to a view without a declaration, so a forgotten decorator is a 403, not an open door.
Fragment (htmx) and JSON routes declare exactly like pages.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import wraps

from flask import Flask, abort, current_app, request

PUBLIC = "public"


class Permission(StrEnum):
    VIEW_PANELS = "view_panels"            # monitoring, deliveries, timelines, decisions
    REPLAY = "replay"                      # replay messages, release dead letters
    CARD_ACTIONS = "card_actions"          # change card status through FINCI
    KILL_SWITCHES = "kill_switches"        # toggle flows
    VIEW_AUDIT = "view_audit"              # read the audit log
    EXPORT_AUDIT = "export_audit"          # export and verify the audit log
    MANAGE_USERS = "manage_users"
    MANAGE_KEYS = "manage_keys"            # credentials and keys
    MANAGE_SETTINGS = "manage_settings"    # rules and program configuration
    REVEAL_CARD_DATA = "reveal_card_data"  # granted to no role by default


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ONCALL = "oncall"
    COMPLIANCE = "compliance"
    ADMIN = "admin"


_VIEWER = frozenset({Permission.VIEW_PANELS})
_OPERATOR = _VIEWER | {Permission.REPLAY, Permission.CARD_ACTIONS}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.OPERATOR: _OPERATOR,
    Role.ONCALL: _OPERATOR | {Permission.KILL_SWITCHES},
    # Compliance sees masked data only and reads the audit trail; it changes nothing.
    Role.COMPLIANCE: _VIEWER | {Permission.VIEW_AUDIT, Permission.EXPORT_AUDIT},
    Role.ADMIN: _VIEWER | {Permission.MANAGE_USERS, Permission.MANAGE_KEYS,
                           Permission.MANAGE_SETTINGS, Permission.VIEW_AUDIT},
}


def permissions_for(roles) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(Role(role), frozenset())
    return frozenset(granted)


def _declare(view: Callable, declared) -> Callable:
    view.required_permission = declared  # type: ignore[attr-defined]
    return view


def public(view: Callable) -> Callable:
    """No sign-in needed (health probes, login pages, the signed webhook ingress)."""
    return _declare(view, PUBLIC)


# Set by console.auth: (permission) -> None, aborting with 401/403 (and auditing) when refused.
Enforcer = Callable[[Permission], None]


def require(permission: Permission) -> Callable[[Callable], Callable]:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            enforce = current_app.extensions.get("permission_enforcer")
            if enforce is None:
                abort(403)
            enforce(permission)
            return view(*args, **kwargs)

        return _declare(wrapper, permission)

    return decorator


def has_permission(permission: Permission) -> bool:
    """For templates and navigation only; views are protected by ``require``."""
    check = current_app.extensions.get("permission_checker")
    return bool(check and check(permission))


def declared_permission(app: Flask, endpoint: str):
    view = app.view_functions.get(endpoint)
    return getattr(view, "required_permission", None)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["can"] = has_permission
    app.jinja_env.globals["Permission"] = Permission
    @app.before_request
    def _default_deny():
        if request.endpoint is None:  # 404/405: let routing answer
            return None
        if declared_permission(app, request.endpoint) is None:
            app.logger.error("view without a permission declaration",
                             extra={"endpoint": request.endpoint})
            abort(403)
        return None
