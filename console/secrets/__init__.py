"""Secret stores: where credentials and private keys live (never code, logs or the database).

``store.SecretStore`` is the interface every backend implements (platform-mounted files,
HashiCorp Vault KV v2, and for the embedded default only a local encrypted keystore). Callers
name secrets by a path-like name (``card-data/keys/<kid>``) and hold the value only as long as
they use it.
"""
