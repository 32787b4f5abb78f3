"""Cards as the console knows them: FINCI's token, status and stage, owner, and ledger account."""
