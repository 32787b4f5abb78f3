import datetime as dt
import ssl
import stat

from cryptography import x509

from console.devcert import write_self_signed


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
