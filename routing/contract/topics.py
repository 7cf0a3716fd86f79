"""Topic names and record keys: the one place that knows them (deploy/docs/DESIGN.md,
"Topics, keys, partitions")."""
from __future__ import annotations

from dataclasses import dataclass

FS_EVENTS = "tongdai.fs.events.v1"
# The subset of FS_EVENTS the router consumes (same records, same keys): a stream processor
# pays per message, and a call is ~15 FreeSWITCH events of which routing needs ~4.
FS_ROUTING = "tongdai.fs.routing.v1"
CC_COMMANDS = "tongdai.cc.commands.v1"
CC_EVENTS = "tongdai.cc.events.v1"
ROUTING_DECISIONS = "tongdai.routing.decisions.v1"
CONFIG = "tongdai.config.v1"
DEAD_LETTERS = "tongdai.deadletter.v1"
LIVE = "tongdai.live.v1"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How a topic is created: its key, partitions and cleanup policy."""

    name: str
    key: str  # what the record key is, for readers of this table
    partitions: int
    compacted: bool = False


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(FS_EVENTS, "tenant", 8),
    TopicSpec(FS_ROUTING, "tenant", 8),
    TopicSpec(CC_COMMANDS, "tenant", 8),
    TopicSpec(CC_EVENTS, "tenant", 8),
    TopicSpec(ROUTING_DECISIONS, "node (FreeSWITCH Core-UUID or bridge name)", 4),
    TopicSpec(CONFIG, "entity id (<tenant>/<kind>/<id>)", 1, compacted=True),
    TopicSpec(DEAD_LETTERS, "original topic", 1),
    TopicSpec(LIVE, "tenant", 1, compacted=True),
)


def tenant_key(tenant: str) -> bytes:
    """Key of tenant-partitioned topics: one partition owns one tenant (single writer)."""
    return tenant.encode("utf-8")


def node_key(node: str) -> bytes:
    """Key of routing decisions: the FreeSWITCH node whose bridge executes them."""
    return node.encode("utf-8")


def config_key(tenant: str, kind: str, entity_id: str) -> bytes:
    """Key of the compacted config topic: the last record per entity wins."""
    return f"{tenant}/{kind}/{entity_id}".encode("utf-8")


# The FreeSWITCH facts the router uses: published to FS_ROUTING as well as FS_EVENTS.
ROUTING_TYPES = frozenset({
    "channel_parked", "channel_bridged", "channel_hungup", "channel_vanished", "sip_registered",
    "sip_unregistered", "sip_registration_expired", "command_executed", "node_snapshot_taken",
    "dtmf_received",  # a waiting caller's keys: callbacks (streams/callbacks.py)
})


def for_router(type_: str, payload: dict) -> bool:
    """Does the router need this FreeSWITCH fact? The ROUTING_TYPES, and the creation and
    answer of a leg on an extension's phone that no queue offered (presence from call
    activity; the answer too, because a phone's own call is created before the dialplan
    has said which tenant it belongs to)."""
    if type_ in ROUTING_TYPES:
        return True
    return (type_ in ("channel_created", "channel_answered") and bool(payload.get("extension"))
            and not payload.get("offer_id"))
