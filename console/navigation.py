"""The console's navigation: each feature registers its entry; templates show only the entries
the signed-in user may open (the view itself still enforces the permission)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from console.security.permissions import Permission, has_permission


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    permission: Permission
    order: int


def register(app: Flask, label: str, endpoint: str, permission: Permission, order: int) -> None:
    items = app.extensions.setdefault("navigation", [])
    items.append(NavItem(label, endpoint, permission, order))
    items.sort(key=lambda item: item.order)


def visible_items(app: Flask) -> list[NavItem]:
    return [item for item in app.extensions.get("navigation", [])
            if has_permission(item.permission)]


def init_app(app: Flask) -> None:
    app.jinja_env.globals["navigation"] = lambda: visible_items(app)
