import pytest

from console.ledger.money import format_minor


@pytest.mark.parametrize(("amount", "currency", "text"), [
    (123456, "EUR", "1,234.56 EUR"), (5, "EUR", "0.05 EUR"), (-250, "USD", "-2.50 USD"),
    (0, "EUR", "0.00 EUR"), (1500, "JPY", "1,500 JPY"), (1234, "KWD", "1.234 KWD"),
    (None, "EUR", "—"), (100, "XYZ", "1.00 XYZ"),
])
def test_minor_units_are_shown_as_people_read_them(amount, currency, text):
    assert format_minor(amount, currency) == text
