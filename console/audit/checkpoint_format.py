"""Signed audit checkpoints: the canonical bytes a checkpoint's signature covers and the check
of one checkpoint, shared by the signer (``console.audit.checkpoints``) and every verifier.

A checkpoint vouches for one row of the hash chain: "row ``seq`` had hash ``hash``", signed at
``signed_at`` with the Ed25519 key whose fingerprint is ``key_id``. Recomputing every hash of a
rewritten chain cannot reproduce the signed hashes without the private key.

Standard library, ``cryptography`` and ``console.audit.chain`` / ``export_format`` only, like
the offline verifier.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from console.audit.chain import canonical_json, timestamp_text
from console.audit.export_format import key_fingerprint

# Bump when the signed content changes; the version is part of the signed bytes.
FORMAT = "finci-console-audit-checkpoint/1"


def checkpoint_bytes(*, seq: int, hash: str, signed_at: dt.datetime, key_id: str) -> bytes:
    """The exact bytes signed: canonical JSON (sorted keys, no spaces) of the format version,
    the row's seq and chain hash, the signing time (UTC, microseconds) and the key id."""
    return canonical_json({"format": FORMAT, "seq": seq, "hash": hash,
                           "signed_at": timestamp_text(signed_at), "key_id": key_id}).encode()


def sign_checkpoint(private_key: Ed25519PrivateKey, *, seq: int, hash: str,
                    signed_at: dt.datetime) -> tuple[str, str]:
    """(key_id, base64 signature) for row ``seq`` with chain hash ``hash``."""
    key_id = key_fingerprint(private_key.public_key())
    message = checkpoint_bytes(seq=seq, hash=hash, signed_at=signed_at, key_id=key_id)
    return key_id, base64.b64encode(private_key.sign(message)).decode()


def checkpoint_problem(public_key: Ed25519PublicKey, checkpoint, chain_hash: str | None
                       ) -> str | None:
    """None if ``checkpoint`` (seq, hash, signed_at, key_id, signature) is signed by
    ``public_key`` and the chain's row at its seq has ``chain_hash`` equal to the signed hash
    (``chain_hash`` None: the chain has no such row); else the problem, in words."""
    seq = checkpoint.seq
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(signature, checkpoint_bytes(
            seq=seq, hash=checkpoint.hash, signed_at=checkpoint.signed_at,
            key_id=checkpoint.key_id))
    except (ValueError, binascii.Error, InvalidSignature):
        expected = key_fingerprint(public_key)
        if checkpoint.key_id != expected:
            return (f"checkpoint at row {seq} says it was signed by {checkpoint.key_id}, "
                    f"not by the key given ({expected})")
        return (f"checkpoint at row {seq}: the signature does not verify (the checkpoint was "
                "changed or forged)")
    if chain_hash is None:
        return (f"checkpoint at row {seq}: the chain has no row {seq} (rows were removed or "
                "the chain was rebuilt shorter)")
    if chain_hash != checkpoint.hash:
        return (f"checkpoint at row {seq}: row {seq}'s hash differs from the signed hash "
                "(the chain was rewritten)")
    return None
