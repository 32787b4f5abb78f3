import itertools
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.finci.contract import TokenStage, TokenStatus
from console.finci.payload import parse_message
from console.simulator.cards import CardBook, SimCard
from console.simulator.scenarios import (
    PLAIN,
    SCENARIOS,
    Answer,
    BadRequest,
    CardScript,
    DeliveryPolicy,
    Ids,
    StepKind,
    advice_body,
    all_bodies,
    book_size_for,
    card_script,
    encode,
    get_scenario,
    iso_utc,
    work_items,
)

NOW = datetime(2026, 11, 27, 8, 30, 1, 234567, tzinfo=UTC)


def items_of(name, seed=1, run_id="r", limit=200, **kwargs):
    spec = get_scenario(name)
    cards = kwargs.pop("cards", spec.cards)
    book = kwargs.pop("book", None) or CardBook.seeded(seed, book_size_for(cards))
    return list(itertools.islice(
        work_items(spec, book, seed=seed, run_id=run_id, cards=cards, **kwargs), limit))


def scripts_of(name, **kwargs):
    return [item for item in items_of(name, **kwargs) if isinstance(item, CardScript)]


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("seed", [1, 2])
def test_every_body_a_scenario_can_send_is_schema_valid(name, seed):
    for script in scripts_of(name, seed=seed, limit=40):
        for body in all_bodies(script, NOW):
            message = parse_message(encode(body))
            assert message.known_type
            assert message.created_at == NOW.replace(microsecond=234000)
            if message.type == "authorization":
                assert (message.response_code is None) == (message.advice is False)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_scenario_is_reproducible_from_its_seed_and_run_id(name):
    assert items_of(name, seed=4, run_id="a") == items_of(name, seed=4, run_id="a")
    assert items_of(name, seed=4, run_id="a") != items_of(name, seed=5, run_id="a")


def test_the_run_id_changes_ids_only():
    a, b = scripts_of("happy-path", run_id="a"), scripts_of("happy-path", run_id="b")
    amounts = [[s.body.get("amount") for s in script.steps] for script in a]
    assert amounts == [[s.body.get("amount") for s in script.steps] for script in b]
    ids_a = {s.message_id for script in a for s in script.steps}
    assert ids_a.isdisjoint({s.message_id for script in b for s in script.steps})


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_message_and_webhook_ids_are_unique_in_a_run(name):
    message_ids, webhook_ids = [], []
    for item in items_of(name):
        if isinstance(item, BadRequest):
            webhook_ids.append(item.webhook_id)
            continue
        for step in item.steps:
            message_ids.append(step.message_id)
            webhook_ids += [step.webhook_id] + ([step.advice_webhook_id]
                                                if step.advice_webhook_id else [])
    assert len(set(message_ids)) == len(message_ids)
    assert len(set(webhook_ids)) == len(webhook_ids)
    assert all(len(i) <= 64 for i in message_ids)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_follow_ups_refer_to_an_earlier_authorization_of_the_same_card(name):
    for script in scripts_of(name):
        authorized = set()
        for step in script.steps:
            assert step.body["token_id"] == script.token_id
            if step.kind is StepKind.AUTHORIZATION:
                authorized.add(step.message_id)
            if step.after_approval_of is not None:
                assert step.after_approval_of in authorized
                assert step.body["authorization_id"] == step.after_approval_of
            elif "authorization_id" in step.body:  # deliberately unlinkable
                assert step.body["authorization_id"].endswith("_unseen")


def test_happy_path_covers_the_whole_lifecycle():
    kinds = set()
    offline = 0
    for script in scripts_of("happy-path", cards=40):
        for step in script.steps:
            kinds.add(step.kind)
            offline += step.kind is StepKind.PRESENTMENT and "authorization_id" not in step.body
    assert kinds == set(StepKind)
    assert offline > 0


def test_happy_path_has_full_and_partial_presentments():
    full = partial = 0
    for script in scripts_of("happy-path", cards=40):
        amounts = {s.message_id: s.body["amount"] for s in script.steps
                   if s.kind is StepKind.AUTHORIZATION}
        for step in script.steps:
            if step.kind is StepKind.PRESENTMENT and step.after_approval_of:
                held = amounts[step.after_approval_of]
                full += step.body["amount"] == held
                partial += step.body["amount"] < held
    assert full and partial


def test_clearing_failures_include_over_hold_currency_mismatch_and_unknown_cards():
    book = CardBook.seeded(1, book_size_for(8))
    over = mismatch = unknown_card = 0
    for script in scripts_of("clearing-failures", book=book):
        auths = {s.message_id: s.body for s in script.steps if s.kind is StepKind.AUTHORIZATION}
        unknown_card += script.token_id not in book
        for step in script.steps:
            if step.kind is StepKind.PRESENTMENT and step.after_approval_of:
                auth = auths[step.after_approval_of]
                over += step.body["amount"] > auth["amount"]
                mismatch += step.body["currency"] != auth["currency"]
    assert over and mismatch and unknown_card == 2


def test_after_a_compromise_every_authorization_must_be_declined():
    for script in scripts_of("card-compromise"):
        compromised = False
        for step in script.steps:
            if step.kind is StepKind.CARD_STATUS:
                compromised = step.body["token_status"] == "compromized"
            elif step.kind is StepKind.AUTHORIZATION:
                assert step.expect is (Answer.ERROR if compromised else None)
        assert compromised
        assert any(s.kind is StepKind.FINCI_ADVICE for s in script.steps)


def test_the_timeout_storm_is_a_burst_of_requests_at_finci_real_deadline():
    spec = get_scenario("timeout-storm")
    assert spec.burst and spec.cards >= 100
    for script in scripts_of("timeout-storm"):
        assert {s.kind for s in script.steps} == {StepKind.AUTHORIZATION}


def test_steady_never_runs_out():
    assert len(items_of("steady", cards=3, limit=50)) == 50


def test_scripts_start_from_active_cards_only():
    book = CardBook.seeded(2, 60)
    for script in scripts_of("happy-path", book=book, cards=20):
        assert book.get(script.token_id).token_status is TokenStatus.ACTIVE


def test_too_few_active_cards_is_an_error():
    with pytest.raises(ValueError, match="active cards"):
        items_of("happy-path", book=CardBook.seeded(1, 3), cards=10)


def test_unknown_scenarios_and_bad_run_ids_are_refused():
    with pytest.raises(ValueError):
        get_scenario("nope")
    with pytest.raises(ValueError):
        Ids("Has Spaces")


# --- delivery plans ---------------------------------------------------------------------------


def test_a_clean_policy_plans_plain_delivery():
    for script in scripts_of("happy-path"):
        assert {s.delivery for s in script.steps} | {s.advice_delivery for s in script.steps} == {
            PLAIN}


def test_requests_are_never_held_or_delayed():
    policy = DeliveryPolicy(duplicate_rate=1, out_of_order_rate=1, delay_rate=1)
    for script in scripts_of("happy-path", delivery=policy):
        for step in script.steps:
            if step.kind is StepKind.AUTHORIZATION:
                assert not step.delivery.hold and not step.delivery.delay_s
                assert step.advice_delivery.hold and step.advice_delivery.delay_s >= 0
            else:
                assert step.delivery.hold and step.delivery.copies >= 2


def test_changing_one_rate_does_not_reshuffle_the_others():
    base = DeliveryPolicy(duplicate_rate=0.3)
    more = DeliveryPolicy(duplicate_rate=0.3, out_of_order_rate=0.5)
    copies = [[s.delivery.copies for s in sc.steps] for sc in scripts_of("happy-path",
                                                                          delivery=base)]
    assert copies == [[s.delivery.copies for s in sc.steps]
                      for sc in scripts_of("happy-path", delivery=more)]


def test_bad_requests_follow_scripts_at_the_configured_rate():
    items = items_of("happy-path", malformed_rate=1.0)
    bad = [i for i in items if isinstance(i, BadRequest)]
    assert len(bad) == len(items) // 2
    assert len({b.kind for b in bad}) == min(len(bad), 7)


@pytest.mark.parametrize("rates", [dict(duplicate_rate=1.1), dict(max_copies=1),
                                   dict(max_delay_s=-1)])
def test_delivery_policies_are_validated(rates):
    with pytest.raises(ValueError):
        DeliveryPolicy(**rates)


# --- the per-card generator, for property tests -----------------------------------------------

cards = st.builds(
    SimCard,
    token_id=st.from_regex(r"tok_[a-z]{1,40}", fullmatch=True),
    embossing_name=st.just("A B"),
    card_number=st.just("5200-00**-****-0000"),
    expiration_date=st.just("2030-01"),
    product_id=st.just("p"),
    currency=st.sampled_from(["EUR", "GBP", "USD", "JPY"]),
    token_status=st.just(TokenStatus.ACTIVE),
    token_stage=st.sampled_from(list(TokenStage)),
)


@settings(max_examples=25, deadline=None)
@given(card=cards, seed=st.integers(0, 2**32), name=st.sampled_from(sorted(SCENARIOS)))
def test_card_script_bodies_are_valid_for_any_card_and_seed(card, seed, name):
    script = card_script(card, seed=seed, scenario=name)
    assert script.token_id == card.token_id and script.steps
    for body in all_bodies(script, NOW):
        parse_message(encode(body))
    assert card_script(card, seed=seed, scenario=name) == script


def test_advice_body_only_for_authorizations():
    script = card_script(CardBook.seeded(1, 1).cards()[0], seed=1, scenario="card-compromise")
    status_step = next(s for s in script.steps if s.kind is StepKind.CARD_STATUS)
    with pytest.raises(ValueError):
        advice_body(status_step, "Approved", NOW)


def test_iso_utc_is_millisecond_zulu():
    assert iso_utc(NOW) == "2026-11-27T08:30:01.234Z"


def test_generators_take_any_random_source():
    card = CardBook.seeded(1, 1).cards()[0]
    spec = get_scenario("happy-path")
    one = spec.card_script(card, random.Random(3), Ids("x"))
    assert one == spec.card_script(card, random.Random(3), Ids("x"))
