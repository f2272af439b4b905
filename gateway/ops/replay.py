"""What a replay puts back besides what was asked (the dead deliveries queued behind a replayed one), and why it left
a delivery alone: one explanation per delivery, a stable code with Chinese and English words."""

from __future__ import annotations

from contracts.delivery import DeliveryReceipt, DeliveryState
from gateway.ops.schemas import NotReplayed, NotReplayedReason
from gateway.store.base import DeliveryFilter, LaneStore

# How many dead deliveries of one ticket on one lane a replay takes along (a ticket's follow-ups are few).
FOLLOWERS_LIMIT = 200

# reason -> (Chinese for the operator, English for logs)
REASONS: dict[NotReplayedReason, tuple[str, str]] = {
    "delivered": ("已投递成功，无需重新投递", "already delivered; nothing to replay"),
    "pending": ("已在队列中等待发送，无需重新投递", "already waiting on its lane to be sent"),
    "in_flight": ("正在发送中，请稍后查看结果", "being sent right now; see its outcome shortly"),
    "changed_meanwhile": ("处理期间状态已变化（可能已被他人重投或已发送）",
                          "its state changed meanwhile (replayed by someone else, or sent)"),
}
_BY_STATE: dict[DeliveryState, NotReplayedReason] = {
    DeliveryState.DELIVERED: "delivered", DeliveryState.PENDING: "pending", DeliveryState.IN_FLIGHT: "in_flight",
}


def not_replayed(receipt: DeliveryReceipt) -> NotReplayed:
    """Why `receipt` was not put back: what its state says (dead or retrying ones changed while the replay ran)."""
    reason = _BY_STATE.get(receipt.state, "changed_meanwhile")
    zh, en = REASONS[reason]
    return NotReplayed(delivery_id=receipt.delivery_id, state=receipt.state, reason=reason, message=zh, message_en=en)


async def with_followers(store: LaneStore, replaying: list[DeliveryReceipt]) -> list[str]:
    """The ids to replay: those given, and after each dead one the dead deliveries of its ticket on its lane
    enqueued after it — a ticket's follow-ups sent while its national forward was stuck, which the platform refused
    (no registration yet) — so that they go again after it, in order, rather than being lost. Oldest first."""
    chosen = {r.delivery_id: r for r in replaying}
    for receipt in replaying:
        if receipt.state is not DeliveryState.DEAD:
            continue
        behind = await store.list_deliveries(DeliveryFilter(state=DeliveryState.DEAD, destination=receipt.destination,
                                                            ticket_id=receipt.ticket_id, limit=FOLLOWERS_LIMIT))
        chosen.update({r.delivery_id: r for r in behind if r.created_at >= receipt.created_at})
    return [r.delivery_id for r in sorted(chosen.values(), key=lambda r: (r.created_at, r.delivery_id))]
