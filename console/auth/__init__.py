"""Identity and access: OIDC sign-in, roles, server-side sessions, step-up and break-glass.

Public API for other modules:

- ``console.security.permissions.require`` / ``public`` declare a view's permission (unchanged);
  this package installs the enforcer behind them (``app.extensions["permission_enforcer"]``).
- ``console.auth.step_up.fresh_login_required`` marks actions that need a login younger than
  ``STEP_UP_MAX_AGE_SECONDS`` (card-data reveal, key actions, production kill switches).
- ``console.auth.current.current_user_record()`` is the signed-in ``User`` (or None).

Kept import-light: ``console.settings`` imports ``console.auth.settings``.
"""
