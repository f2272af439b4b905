"""The platform's side of a partner's follow-ups: an update, urge or withdrawal of a registered ticket, answered."""

from __future__ import annotations

import logging

from contracts.codesets import Status
from contracts.followups import newer
from contracts.national_followups import NationalFollowUp, NationalFollowUpAnswer
from contracts.status import TRANSITIONS
from simulators.national.events import EventDispatcher, EventRequest
from simulators.national.registry import NationalState, RegisteredTicket

log = logging.getLogger(__name__)

WITHDRAWN_OPINION = "诉求人申请撤回，终止办理。"


def registered_for(state: NationalState, follow_up: NationalFollowUp) -> RegisteredTicket | None:
    """The registration a follow-up names: by its number when the gateway knew it, else by the first version's key."""
    if follow_up.national_registration_no and follow_up.national_registration_no in state.tickets:
        return state.tickets[follow_up.national_registration_no]
    number = state.keys.get(follow_up.registration_key)
    return state.tickets.get(number) if number else None


def take_follow_up(state: NationalState, registered: RegisteredTicket, follow_up: NationalFollowUp,
                   events: EventDispatcher) -> NationalFollowUpAnswer:
    """Apply one follow-up and answer it. The same follow-up again (its key) gets the first answer back, changing
    nothing: the gateway delivers at least once."""
    known = registered.follow_up_answers.get(follow_up.key)
    if known is not None:
        state.stats.follow_up_repeats += 1
        return known
    number = registered.national_registration_no
    if follow_up.operation == "update":
        assert follow_up.ticket is not None and follow_up.version is not None  # the contract requires them
        if newer(follow_up.version, registered.version):
            ticket = follow_up.ticket.model_copy(update={"national_registration_no": number})
            registered.ticket, registered.version = ticket, follow_up.version
            registered.versions.append(follow_up.version)
            state.stats.updates += 1
            outcome = "updated"
        else:
            outcome = "repeat"
        answer = NationalFollowUpAnswer(operation="update", outcome=outcome, national_registration_no=number,
                                        key=follow_up.key, version=registered.version)
    elif follow_up.operation == "urge":
        registered.urge_count += 1
        state.stats.urges += 1
        answer = NationalFollowUpAnswer(operation="urge", outcome="recorded", national_registration_no=number,
                                        key=follow_up.key, urge_count=registered.urge_count)
    elif Status.WITHDRAWN in TRANSITIONS[registered.status]:
        state.stats.withdrawals += 1
        answer = NationalFollowUpAnswer(operation="withdraw", outcome="accepted", national_registration_no=number,
                                        key=follow_up.key)
        # The lifecycle moves by the platform's own signed status event, as every other change does.
        events.issue(registered, EventRequest(status=Status.WITHDRAWN, opinion=follow_up.text or WITHDRAWN_OPINION))
    else:
        state.stats.withdrawals_refused += 1
        answer = NationalFollowUpAnswer(operation="withdraw", outcome="refused", national_registration_no=number,
                                        key=follow_up.key,
                                        reason=f"工单当前状态为 {registered.status.value}，不能撤回")
    registered.follow_up_answers[follow_up.key] = answer
    log.info("follow-up taken", extra={"national_registration_no": number, "operation": follow_up.operation,
                                       "outcome": answer.outcome})
    return answer
