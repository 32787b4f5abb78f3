"""Our own double-entry ledger in integer minor units: accounts, journals, entries and holds.

- ``models``: ``LedgerAccount`` (running posted and held totals), ``LedgerJournal`` +
  ``LedgerEntry`` (balanced postings), ``Hold`` (one per authorization, UNIQUE).
- ``services``: ``place_hold`` / ``release_hold`` / ``adjust_hold`` / ``convert_hold``,
  ``post_journal``, ``available_balance``, ``release_expired_holds``, ``verify_balances``.

Available balance = posted balance minus open holds, per account, in the account's currency.
"""
