"""The transaction lifecycle (issue #6): one record per card transaction linking all its messages.

- ``settings``: the program setup (does the integrator keep the ledger?), hold expiry, tolerance,
  and the FINCI Card API credentials used by ``console.cards``.
- ``models``: ``CardTransaction`` (state and amounts), ``TransactionMessage`` (which stored
  message belongs to which transaction, and as what), ``TransactionPosting`` (one per presentment
  or refund: posted, parked, or failed with a reason).
- ``linking``: which transaction a message belongs to; orphans wait for their authorization.
- ``services``: the state as a pure function of the linked messages, and the ledger brought in
  line with it (holds converted, reduced or released; presentments and refunds posted).
- ``handlers``: the pipeline handlers (authorization, reversal, presentment, refund).
- ``expiry``: the scheduled job releasing holds of authorizations that never cleared.
- ``timeline``: one transaction end to end, for the page and for ``flask trace``.

Kept import-free: ``console.settings`` imports ``console.transactions.settings``.
"""
