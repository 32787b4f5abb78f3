"""The single replaceable home of every FINCI assumption.

FINCI's portal documents only part of the integration contract (``FINCI.md`` section A); where
it is silent this project assumes (section B). Every such fact or guess lives in this package,
so that when FINCI confirms the real values only these modules change, never the ingress, the
business layer or the UI.

Modules, one reason to change each:

- ``contract``: named constants: header names, tolerances, size caps, message types, token
  statuses and stages, authorization answer bodies, HTTP answers.
- ``webhook_signature``: webhook authenticity (Standard Webhooks, assumption B.1).
- ``payload``: webhook body parsing and validation (assumption B.3, ``webhook.schema.json``).
- ``card_api``: outbound Card API client and its request signature (assumption B.6).
- ``card_status``: the working card status transition model.

The package is pure Python: no Flask, no database, no module-level mutable state. Import the
submodules directly; nothing is re-exported here so importing the package stays cheap.
"""
