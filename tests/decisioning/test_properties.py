"""Property: whatever mix of requests, repeats and advices arrives, the money adds up.

- decisions never approve more than the available balance (only FINCI's advice may overdraw);
- the account's held total always equals the sum of its open holds, and entries balance;
- every authorization has at most one hold, and an open hold only where the last word
  (the advice, or our approval awaiting one) is "approved", in whatever order they came.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from console.decisioning.advice import apply_advice
from console.decisioning.services import decide
from console.ledger import services as ledger
from console.ledger.models import Hold
from tests.decisioning.helpers import FakeClock, advice_for, authorization, funded_card
from tests.decisioning.helpers import settings as decisioning_settings

BALANCE = 10_000

step = st.one_of(
    st.tuples(st.just("request"), st.integers(0, 6), st.integers(0, 6_000)),
    st.tuples(st.just("repeat"), st.integers(0, 6), st.just(0)),
    st.tuples(st.just("advice"), st.integers(0, 6),
              st.sampled_from(["Approved", "InsufficientFunds", "DoNotHonour"])),
)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=14))
def test_money_adds_up_whatever_arrives(db_session, steps):
    with db_session.begin_nested() as example:
        card = funded_card(db_session, token_id="tok_property", balance=BALANCE)
        config, clock = decisioning_settings(), FakeClock()
        requests: dict[int, object] = {}
        decided: set[int] = set()
        last_word: dict[str, bool] = {}
        advised: set[str] = set()

        def request_for(slot: int, amount: int):
            if slot not in requests:
                requests[slot] = authorization(token_id="tok_property", amount=amount,
                                               id_=f"auth_property_{slot}")
            return requests[slot]

        for kind, slot, value in steps:
            if kind == "request" and slot not in decided:
                request = request_for(slot, value)
                before = ledger.balance(db_session, card.account_id).available
                decision = decide(db_session, request, config, clock)
                decided.add(slot)
                if request.id in advised:
                    # FINCI has spoken already: its outcome comes back, nothing changes.
                    assert decision.repeated
                else:
                    if decision.approve:
                        assert request.amount <= before, "approved beyond the balance"
                    last_word[request.id] = decision.approve
            elif kind == "repeat" and slot in decided:
                assert decide(db_session, requests[slot], config, clock).repeated
            elif kind == "advice" and (slot not in requests or requests[slot].id not in advised):
                # Sometimes before its request: order is not guaranteed.
                request = request_for(slot, 1_000 + slot)
                apply_advice(db_session, advice_for(request, value), config)
                advised.add(request.id)
                last_word[request.id] = value == "Approved"

        assert ledger.verify_balances(db_session) == []
        # Rows, not ORM objects: the identity map may hold rows of rolled-back examples.
        holds = db_session.execute(select(Hold.authorization_id, Hold.status)).all()
        assert len({h.authorization_id for h in holds}) == len(holds)
        open_holds = {h.authorization_id for h in holds if h.status == "open"}
        assert open_holds == {auth for auth, approved in last_word.items() if approved}
        example.rollback()
