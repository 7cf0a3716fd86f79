"""Decisions: the commands routing asks the edges to carry out.

Each decision names the call and queue, lists the candidates it considered with their scores,
the agents it chose and a sentence saying why. Ids are uuid5 values derived from the call id
and a per-call counter, so replaying the same events yields the same ids, which the actuator
uses as idempotency keys (``origination_uuid`` of an offer leg is the ``offer_id``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar, Union

from routing.ids import uuid5_of
from routing.model import Action

__all__ = [
    "NAMESPACE",
    "make_id",
    "Candidate",
    "OfferCall",
    "CancelOffer",
    "ConnectCall",
    "RunAfterHoursAction",
    "OverflowCall",
    "ForwardToMobile",
    "Decision",
]

NAMESPACE = uuid.UUID("6f1f4a52-7c1e-5d0b-9a8e-2b7d0c3e4a11")


def make_id(*parts: object) -> str:
    """A deterministic id (uuid5 string) from the given parts: over their ":"-join wherever
    that is unambiguous (so the ids made before stay the same), else over an encoding that
    is (see `routing.ids`)."""
    return uuid5_of(NAMESPACE, parts, ":")


@dataclass(frozen=True, slots=True)
class Candidate:
    """An agent the policy looked at for a call.

    ``score`` is the sort key (higher is better, compared component by component) and
    ``why`` spells it out (``"tier 1, skill 17, idle 340 s"``); ``eligible`` is False with
    the rule that excluded the agent in ``why`` when the agent was ruled out.
    """

    agent_id: str
    score: tuple[float, ...]
    why: str
    eligible: bool = True


_D = dict(frozen=True, slots=True, kw_only=True)


@dataclass(**_D)
class _Base:
    decision_id: str
    call_id: str
    queue_id: str
    reason: str
    candidates: tuple[Candidate, ...] = ()
    chosen: tuple[str, ...] = ()


@dataclass(**_D)
class OfferCall(_Base):
    """Ring ``agent_id``'s extension for this call; give up at ``expires_us``. ``attempt``
    counts the offers made for this call, this one included (1 = first)."""

    type: ClassVar[str] = "offer_call"
    offer_id: str
    agent_id: str
    extension: str
    caller: str
    expires_us: int
    attempt: int = 1
    connect: str = "switch"  # the queue's: who bridges when the phone answers


@dataclass(**_D)
class CancelOffer(_Base):
    """Stop ringing an offer leg. ``cause`` is ``no_answer`` (timeout: a penalty applies) or
    ``answered_elsewhere`` / ``call_gone`` (no penalty)."""

    type: ClassVar[str] = "cancel_offer"
    offer_id: str
    agent_id: str
    cause: str


@dataclass(**_D)
class ConnectCall(_Base):
    """Bridge the caller with the answered, parked offer leg (``uuid_bridge``)."""

    type: ClassVar[str] = "connect_call"
    offer_id: str
    agent_id: str


@dataclass(**_D)
class RunAfterHoursAction(_Base):
    """The queue is closed: carry out ``action`` for the caller."""

    type: ClassVar[str] = "run_after_hours_action"
    action: Action


@dataclass(**_D)
class OverflowCall(_Base):
    """The queue cannot serve the call (``cause``: ``max_wait``, ``max_queue_len``,
    ``no_agent``); carry out ``action``."""

    type: ClassVar[str] = "overflow_call"
    action: Action
    cause: str


@dataclass(**_D)
class ForwardToMobile(_Base):
    """No extension of the queue is online: forward the caller to an agent's mobile."""

    type: ClassVar[str] = "forward_to_mobile"
    agent_id: str
    mobile: str


Decision = Union[OfferCall, CancelOffer, ConnectCall, RunAfterHoursAction, OverflowCall, ForwardToMobile]
