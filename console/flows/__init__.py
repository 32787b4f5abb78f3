"""Flow kill switches: on-call can disable a payment flow in seconds, audited, with auto-revert."""
