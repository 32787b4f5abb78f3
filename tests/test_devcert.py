import datetime as dt
import ssl
import stat

from cryptography import x509

from console.devcert import MARGIN_DAYS, write_self_signed
from console.keys.services import TLS_WARN_DAYS, Status, TlsFiles, tls_item


def test_certificate_is_valid_for_localhost_and_key_is_private(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key)
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert loaded.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=20)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)  # the pair matches


def test_a_valid_certificate_is_kept(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key)
    before = cert.read_bytes()
    write_self_signed(cert, key)
    assert cert.read_bytes() == before


def _tls_findings(cert, key, at=None):
    item = tls_item(TlsFiles(str(cert), str(key)), at or dt.datetime.now(dt.UTC))
    return [finding.status for finding in item.findings]


def test_a_fresh_demo_certificate_is_not_flagged_by_the_keys_status_check(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key)
    assert _tls_findings(cert, key) == [Status.OK]
    # and it stays unflagged for the margin, not only on the day it is made
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=MARGIN_DAYS - 1)
    assert _tls_findings(cert, key, later) == [Status.OK]


def test_a_kept_certificate_is_never_inside_the_expiry_warning(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, days=TLS_WARN_DAYS)  # e.g. one made before the margin existed
    assert Status.ATTENTION in _tls_findings(cert, key)
    write_self_signed(cert, key)
    assert _tls_findings(cert, key) == [Status.OK]
