import pytest

from console.finci.card_status import (
    ACTION_TARGETS,
    END_STATES,
    TRANSITIONS,
    OperatorAction,
    TransitionRefused,
    allowed_transitions,
    can_approve,
    check_transition,
    is_end_state,
    is_modelled_transition,
    plan_action,
    target_status,
)
from console.finci.contract import TokenStatus as S

END = {S.BLOCKED, S.CLOSED, S.COMPROMIZED, S.DAMAGED, S.LOST, S.STOLEN}


def test_every_status_has_an_entry_in_the_model():
    assert set(TRANSITIONS) == set(S)


def test_end_states_are_the_six_documented_ones():
    assert END_STATES == END
    assert all(is_end_state(s) for s in END)
    assert not any(is_end_state(s) for s in set(S) - END)


def test_new_card_can_be_activated():
    assert check_transition("new", "active") is S.ACTIVE


def test_active_and_deactivated_is_the_reversible_pair():
    assert check_transition(S.ACTIVE, S.DEACTIVATED) is S.DEACTIVATED
    assert check_transition(S.DEACTIVATED, S.ACTIVE) is S.ACTIVE


@pytest.mark.parametrize("end", sorted(END))
@pytest.mark.parametrize("source", [S.NEW, S.ACTIVE, S.DEACTIVATED, S.REFERRAL])
def test_any_live_status_can_move_to_an_end_state(source, end):
    assert check_transition(source, end) is end


@pytest.mark.parametrize("end", sorted(END))
@pytest.mark.parametrize("target", list(S))
def test_end_states_never_change(end, target):
    assert allowed_transitions(end) == frozenset()
    with pytest.raises(TransitionRefused):
        check_transition(end, target)


def test_end_state_refusal_says_why():
    with pytest.raises(TransitionRefused, match="'lost' is an end state") as caught:
        check_transition("lost", "active")
    assert (caught.value.from_status, caught.value.to_status) == ("lost", "active")


def test_referral_can_return_to_active():
    assert check_transition(S.REFERRAL, S.ACTIVE) is S.ACTIVE


@pytest.mark.parametrize("source", [S.NEW, S.ACTIVE, S.DEACTIVATED])
def test_referral_cannot_be_requested(source):
    with pytest.raises(TransitionRefused, match="set by FINCI"):
        check_transition(source, S.REFERRAL)


@pytest.mark.parametrize(
    ("source", "target"),
    [(S.NEW, S.DEACTIVATED), (S.DEACTIVATED, S.NEW), (S.ACTIVE, S.NEW), (S.REFERRAL, S.NEW)],
)
def test_transitions_outside_the_model_are_refused_with_the_allowed_list(source, target):
    with pytest.raises(TransitionRefused, match="only these are allowed"):
        check_transition(source, target)


@pytest.mark.parametrize("status", list(S))
def test_asking_for_the_current_status_is_refused(status):
    with pytest.raises(TransitionRefused):
        check_transition(status, status)


def test_already_in_status_message_is_clear():
    with pytest.raises(TransitionRefused, match="already active"):
        check_transition("active", "active")


@pytest.mark.parametrize(
    ("source", "target"), [("compromised", "active"), ("active", "frozen"), (None, "active")]
)
def test_unknown_statuses_are_refused(source, target):
    with pytest.raises(TransitionRefused, match="not a known status"):
        check_transition(source, target)


def test_unknown_status_allows_nothing():
    assert allowed_transitions("compromised") == frozenset()
    assert not is_end_state("compromised")


def test_reported_transitions_can_be_checked_against_the_model_without_raising():
    assert is_modelled_transition("active", "lost")
    assert not is_modelled_transition("active", "referral")
    assert not is_modelled_transition("lost", "active")
    assert not is_modelled_transition("active", "frozen")


def test_only_active_cards_can_be_approved():
    assert can_approve(S.ACTIVE) and can_approve("active")
    for status in set(S) - {S.ACTIVE}:
        assert not can_approve(status)
    for value in (None, "", "ACTIVE", "Active", " active", "activ"):
        assert not can_approve(value)


@pytest.mark.parametrize(
    ("action", "target"),
    [
        ("deactivate", S.DEACTIVATED),
        ("reactivate", S.ACTIVE),
        ("block", S.BLOCKED),
        ("report_lost", S.LOST),
        ("report_stolen", S.STOLEN),
    ],
)
def test_operator_actions_map_to_one_target_status(action, target):
    assert target_status(action) is target
    assert ACTION_TARGETS[OperatorAction(action)] is target


def test_every_operator_action_has_a_target():
    assert set(ACTION_TARGETS) == set(OperatorAction)


def test_unknown_operator_action_is_a_value_error():
    with pytest.raises(ValueError):
        target_status("close")


def test_plan_action_checks_the_transition():
    assert plan_action("active", "deactivate") is S.DEACTIVATED
    assert plan_action("deactivated", "reactivate") is S.ACTIVE
    assert plan_action("deactivated", "report_stolen") is S.STOLEN
    with pytest.raises(TransitionRefused):
        plan_action("stolen", "reactivate")
    with pytest.raises(TransitionRefused):
        plan_action("new", "deactivate")


def test_model_tables_are_read_only():
    with pytest.raises(TypeError):
        TRANSITIONS[S.LOST] = frozenset({S.ACTIVE})  # type: ignore[index]
    with pytest.raises(TypeError):
        ACTION_TARGETS[OperatorAction.BLOCK] = S.ACTIVE  # type: ignore[index]
