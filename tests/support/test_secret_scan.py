from tests.conftest import TEST_SECRET_KEY
from tests.ingress.helpers import SECRET
from tests.support.secret_scan import known_secrets, secrets_in


def test_the_suites_secrets_are_known_in_every_form_a_leak_could_take():
    known = known_secrets()
    assert TEST_SECRET_KEY in known
    assert SECRET.export() in known and "ingress-test-secret-0123456789ab" in known


def test_a_secret_in_text_is_found_and_shown_by_its_start_only():
    found = secrets_in(f'{{"note": "key was {SECRET.export()}"}}')
    assert found == [f"{SECRET.export()[:4]}…({len(SECRET.export())} chars)"]
    assert SECRET.export() not in found[0]
    assert secrets_in("nothing secret here: whsec_ alone, test-secret-key") == []


def test_the_scanner_records_a_leak(pan_scanner):
    before = len(pan_scanner.secret_hits)
    pan_scanner.scan(f"debug: secret_key={TEST_SECRET_KEY}", "test:probe")
    assert len(pan_scanner.secret_hits) == before + 1
    del pan_scanner.secret_hits[before:]  # a planted leak, not one of the product's
