"""``flask --app wsgi flows list|disable|enable|approve|reject|cancel``: the kill switches for
when the console is unreachable. Same rules as the page (reason required, four-eyes flows file a
request that a different person approves); the actor is the OS user. ``pipeline pause|resume``
is ``switch`` for the processing flow.

Every command takes ``--json``. Exit codes: 0 done, 1 refused (the message says why), 2 usage.
"""

from __future__ import annotations

import datetime as dt
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from console import cli_types
from console.unit_of_work import database

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _emit(as_json: bool, payload: dict, human: str) -> None:
    from console.cli import emit

    emit(as_json, payload, human)


def _refuse(as_json: bool, message: str) -> None:
    _emit(as_json, {"error": message}, f"refused: {message}")
    sys.exit(1)


def state_dict(state) -> dict:
    return {"flow": state.flow.value, "enabled": state.enabled,
            "changed_at": state.changed_at.isoformat() if state.changed_at else None,
            "changed_by": state.changed_by, "approved_by": state.approved_by,
            "reason": state.reason,
            "revert_at": state.revert_at.isoformat() if state.revert_at else None}


def request_dict(request) -> dict:
    return {"request": request.id, "flow": request.flow, "enabled": request.enabled,
            "reason": request.reason, "revert_minutes": request.revert_minutes,
            "requested_by": request.requested_by,
            "requested_at": request.requested_at.isoformat(),
            "expires_at": request.expires_at.isoformat(), "status": request.status,
            "decided_by": request.decided_by}


def switch(flow, enabled: bool, reason: str, as_json: bool, *, revert_minutes: int | None = None,
           describe=None) -> None:
    """Change ``flow`` (or file a four-eyes request) as the OS user, print the outcome."""
    from console.cli import cli_actor
    from console.flows.approvals import change
    from console.flows.services import FlowChangeRefused

    try:
        with database().transaction() as session:
            result = change(session, cli_actor(), flow, enabled=enabled, reason=reason,
                            policy=current_app.extensions["settings"].flows,
                            revert_after=dt.timedelta(minutes=revert_minutes)
                            if revert_minutes else None)
            payload = (request_dict(result.request) if result.request is not None
                       else state_dict(result.state))
    except FlowChangeRefused as refused:
        _refuse(as_json, str(refused))
    if "request" in payload:
        _emit(as_json, payload, f"request #{payload['request']} filed: {flow.value} "
                                f"{'on' if enabled else 'off'} needs a second person's approval "
                                f"(`flows approve {payload['request']}`) before "
                                f"{payload['expires_at']}")
        return
    human = f"{flow.value} is {'ON' if payload['enabled'] else 'OFF'}"
    if describe is not None:  # a caller's own wording (``pipeline pause|resume``)
        payload, human = describe(payload)
    _emit(as_json, payload, human)


def _flow_argument(command):
    from console.flows.services import Flow

    return click.argument("flow", type=click.Choice([f.value for f in Flow]))(command)


@click.group("flows", cls=AppGroup, help="Kill switches: list, disable, enable, approve.")
def flows_group():
    pass


@flows_group.command("list", help="Every flow's state, and requests waiting for approval.")
@json_option
def flows_list(as_json: bool):
    from console.flows.approvals import pending
    from console.flows.services import all_states

    with database().transaction() as session:
        states = [state_dict(s) for s in all_states(session)]
        waiting = [request_dict(r) for r in pending(session)]
    lines = [f"{s['flow']:<15} {'ON ' if s['enabled'] else 'OFF'}  "
             + (f"{s['changed_at']} by {s['changed_by']}: {s['reason']}" if s["changed_at"]
                else "never changed")
             + (f" (reverts at {s['revert_at']})" if s["revert_at"] else "") for s in states]
    lines += [f"request #{r['request']}: {r['flow']} {'on' if r['enabled'] else 'off'} by "
              f"{r['requested_by']} ({r['reason']}), expires {r['expires_at']}" for r in waiting]
    _emit(as_json, {"flows": states, "requests": waiting}, "\n".join(lines))


def _change_command(name: str, enabled: bool, help_text: str):
    @flows_group.command(name, help=help_text)
    @_flow_argument
    @click.option("--reason", required=True, help="Why (recorded in the audit log).")
    @click.option("--revert-minutes", type=click.IntRange(1, 7 * 24 * 60), default=None,
                  help="Turn back by itself after this many minutes.")
    @json_option
    def command(flow: str, reason: str, revert_minutes: int | None, as_json: bool):
        from console.flows.services import Flow

        switch(Flow(flow), enabled, reason, as_json, revert_minutes=revert_minutes)

    return command


flows_disable = _change_command("disable", False, "Turn a flow off (audited; four-eyes flows "
                                                  "file a request).")
flows_enable = _change_command("enable", True, "Turn a flow back on (audited; four-eyes flows "
                                               "file a request).")


def _decide_command(name: str, help_text: str):
    @flows_group.command(name, help=help_text)
    @click.argument("request_id", type=cli_types.RECORD_ID)
    @json_option
    def command(request_id: int, as_json: bool):
        from console.cli import cli_actor
        from console.flows.approvals import Decision, decide
        from console.flows.services import FlowChangeRefused

        try:
            with database().transaction() as session:
                result = decide(session, cli_actor(), request_id, Decision(name))
                payload = request_dict(result.request)
                if result.state is not None:
                    payload["state"] = state_dict(result.state)
        except FlowChangeRefused as refused:
            _refuse(as_json, str(refused))
        _emit(as_json, payload, f"request #{request_id} {payload['status']}"
              + (f": {payload['flow']} is {'ON' if payload['state']['enabled'] else 'OFF'}"
                 if "state" in payload else ""))

    return command


flows_approve = _decide_command("approve", "Approve someone else's request (applies it).")
flows_reject = _decide_command("reject", "Reject someone else's request.")
flows_cancel = _decide_command("cancel", "Withdraw your own request.")
