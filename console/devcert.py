"""A self-signed TLS certificate for the demo and for tests that run real HTTPS servers.

Production gets its certificate from the organisation's PKI or the TLS-terminating proxy; this
module exists so `make demo` and browser tests can serve the console with `__Host-`/Secure
cookies exactly as production does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from console.keys.services import TLS_WARN_DAYS

# The keys page warns TLS_WARN_DAYS before expiry; a demo certificate is valid for that plus
# this margin, so a fresh one reads OK for the margin and is replaced before the warning.
MARGIN_DAYS = 30
VALIDITY_DAYS = TLS_WARN_DAYS + MARGIN_DAYS


def write_self_signed(cert_path: Path, key_path: Path, *, days: int = VALIDITY_DAYS,
                      hostnames: tuple[str, ...] = ("localhost",),
                      addresses: tuple[str, ...] = ("127.0.0.1", "::1")) -> None:
    """Write a fresh key and certificate unless the existing one is outside the keys page's
    expiry warning for a day more."""
    if cert_path.exists() and key_path.exists():
        existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if existing.not_valid_after_utc > (dt.datetime.now(dt.UTC)
                                           + dt.timedelta(days=TLS_WARN_DAYS + 1)):
            return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FINCI console demo")])
    now = dt.datetime.now(dt.UTC)
    alt_names = [x509.DNSName(h) for h in hostnames] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    # The key file is created private from the start, never world-readable even briefly.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
