"""Real-time authorization decisioning within FINCI's 3-second window (issue #5).

- ``settings``: who decides (integrator or FINCI), the time budget, fallback answers.
- ``budget``: the deadline, and statement timeouts that hold it even when the database stalls.
- ``rules``: pure rule functions, one ``RuleResult`` each; the table the decision walks.
- ``config``: the rule configuration, versioned in the database and edited in the console.
- ``services``: ``decide(session, message, settings, clock)``, the hot path.
- ``advice``: compares FINCI's advice with our answer and keeps or releases the hold.
- ``models``: ``DecisionRecord``, one per authorization: request, answer, trace, latency, advice.
- ``port``: wiring: the ingress's decider, the worker's handler, the console blueprint.
- ``handlers``: the worker's handler for ``authorization`` messages (advices).
- ``queries`` / ``routes``: decisions, divergences and the rule configuration page.

Kept import-free: ``console.settings`` imports ``console.decisioning.settings``.
"""
