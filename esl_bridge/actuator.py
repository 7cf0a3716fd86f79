"""The actuator: routing decisions from Kafka, executed over ESL, outcomes published.

A consumer thread reads `tongdai.routing.decisions.v1` (its own consumer group per bridge,
keeping only the nodes this bridge serves) and hands records to the gevent loop, which
executes them with `bgapi` on the node's connection. Each command is claimed in an
append-only log on disk (fsync'd) before it is sent, so a replayed or re-delivered decision
never rings an agent twice; a crash between claim and send errs on the safe side (the
router's ring-no-answer timeout re-offers). BACKGROUND_JOB results are correlated by
Job-UUID and published as `command_executed`, as is every refusal (unknown node, node
down, expired, malformed).
"""
from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from routing.contract import DecodeError, Envelope, decode, deterministic_id, topics
from routing.contract.edge import dead_letter, fields, now_us, ready_records
from routing.contract.schemas import PAYLOADS

from .legs import LegBook
from .settings import BridgeSettings

log = logging.getLogger("tongdai.bridge.actuator")

# Values go inside `{a=b,c=d}` or after a space in an api line: no structure characters.
_UNSAFE = re.compile(r"[\s{}',\\]")
EARLY_JOBS_KEPT = 1_000
MAX_AGE_S = 60.0  # a decision older than this is stale (its caller has long moved on)
# Decisions started and waiting for their replies at once, at most (a backlog after a
# restart is started this many at a time).
MAX_IN_FLIGHT = 500


def _clean(value: object) -> str:
    return _UNSAFE.sub("", str(value))


# The first phone to answer a call is bridged to its caller by the switch itself, at once:
# the answered leg runs these applications (the `inline` dialplan, so no dialplan lookup
# reaches the API between the answer and the bridge). mod_hash's insert_ifempty is the
# fence, atomic: with several phones ringing for one call (ring-all), or a late answer
# after the router offered the call again, only the first answer takes the key
# (tongdai_won=won), and the winner frees it when it hangs up. The winner has the caller
# bridged to it unless the caller is in a bridge already (bridge_to, which the switch sets
# while a leg is bridged; uuid_getvar says _undef_ otherwise).
# The caller is the bridge's originator: switch_ivr_uuid_bridge's originator polls the
# other leg every 20 ms until both are ready, and the caller is the leg still reading its
# waiting music (it notices at its next 20 ms frame) while the phone's leg is ready at
# once. With the phone's leg as originator (`intercept`), its poll started before the
# caller was ready and the bridge took one 20 ms poll more: answer -> bridged 52 / 81 ms
# p50 / p99 against mod_callcenter's 42 / 59 (which bridges with its caller as
# originator, as now: 42 / 62 against 43 / 63 in the same run).
# Nothing runs on the phone's leg after its bridge: the switch ends it NORMAL_CLEARING
# when the caller leaves. A leg that did not win, or found no caller to take, hangs up
# with what happened: another phone won (LOSE_RACE) or the caller had gone
# (ORIGINATOR_CANCEL: the router knows the phone was not at fault). If the caller hangs up
# in the instant between the uuid_bridge and its music noticing it, nobody would move the
# phone's leg on (an originatee waits for its originator): the `sched_hangup` hangs it up
# ORIGINATOR_CANCEL 3 s later, and the bridge's start cancels it (api_before_bridge).
# fs-conf's tongdai_connect context fences the same way for an originate that names it
# (`connect XML tongdai_connect`), with `intercept`.
CONNECT_VARIABLES = ",".join([
    "tongdai_end_=LOSE_RACE", "tongdai_end_won=ORIGINATOR_CANCEL"])
CONNECT_INLINE = "'" + ",".join([
    r"set:tongdai_won=${regex(${hash(insert_ifempty/tongdai_connect/${tongdai_call_id}/${uuid})}"
    r"|^\+OK|won|n)}",
    "set:api_hangup_hook=hash delete_ifmatch/tongdai_connect/${tongdai_call_id}/${uuid}",
    r"set:tongdai_caller=${regex(${tongdai_won}${uuid_getvar(${tongdai_call_id} bridge_to)}"
    r"|^won_undef_$|${tongdai_call_id}|n)}",
    "sched_hangup:+3 ORIGINATOR_CANCEL",
    "set:api_before_bridge=sched_del ${uuid}",
    "set:tongdai_bridged=${uuid_bridge(${tongdai_caller} ${uuid})}",
    "hangup:${tongdai_end_${tongdai_won}}"]) + "' inline"


def _originate(variables: str, p: dict, then: str) -> str:
    """Ring the payload's extension with `variables` set on the new leg, then run `then`
    (an `&app(...)`, `<destination> XML <context>` or `'<app>:<data>,...' inline`) when
    it answers."""
    return f"originate {{{variables}}}user/{_clean(p['extension'])}@{_clean(p['domain'])} {then}"


def esl_command(envelope: Envelope) -> str:
    """The `bgapi` command line of a routing decision (pure; tested on its own)."""
    p = envelope.payload
    kind = envelope.type
    if kind == "offer_call":
        name = re.sub(r"[{}',\\\n\r]", "", str(p.get("caller_id_name", "")))
        variables = ",".join([
            f"origination_uuid={_clean(p['offer_id'])}",
            f"tongdai_offer_id={_clean(p['offer_id'])}",
            f"tongdai_call_id={_clean(envelope.call_id or '')}",
            f"tongdai_tenant={_clean(envelope.tenant)}",
            f"tongdai_command_id={_clean(p['command_id'])}",
            f"origination_caller_id_number={_clean(p['caller_id_number'])}",
            f"origination_caller_id_name='{name}'",
            # The switch gives up ringing a second before the router's own deadline, so a
            # phone nobody answers ends NO_ANSWER, as it lived, rather than cancelled by the
            # router's timeout (the call log told that as 'withdrawn').
            f"originate_timeout={max(1, int(p['timeout_s']) - 1)}",
            "ignore_early_media=true",
        ])
        if p.get("callback"):
            # The agent's leg will dial the customer (streams/callbacks.py): the leg its
            # bridge creates carries the call's id too, so the call log tells the inbound
            # call and its callback as one call.
            variables += ",export_vars=tongdai_call_id"
        if p.get("connect") == "switch":
            return _originate(f"{variables},{CONNECT_VARIABLES}", p, CONNECT_INLINE)
        return _originate(variables, p, "&park()")
    if kind == "originate_call":
        variables = ",".join([
            f"origination_uuid={_clean(p['leg_id'])}",
            f"tongdai_tenant={_clean(envelope.tenant)}",
            f"tongdai_click_to_call={_clean(p['request_id'])}",
            f"tongdai_agent_id={_clean(p['agent_id'])}",
            f"tongdai_command_id={_clean(p['command_id'])}",
            "tongdai_direction=outbound",
            "export_vars=tongdai_tenant",  # the customer's leg belongs to the tenant too
            # The agent's phone shows whom it is calling; the customer sees the tenant's
            # number (the outbound dialplan refuses a 1800/1900 one as well).
            f"origination_caller_id_number={_clean(p['destination'])}",
            "origination_caller_id_name='Click-to-call'",
            f"effective_caller_id_number={_clean(p['outbound_caller_id'])}",
            f"tongdai_outbound_caller_id={_clean(p['outbound_caller_id'])}",
            f"originate_timeout={int(p['timeout_s'])}",
            "ignore_early_media=true",
        ])
        return _originate(variables, p,
                          f"{_clean(p['destination'])} XML {_clean(p['context'])}")
    if kind == "monitor_call":
        mode = p["mode"]
        variables = ",".join([
            f"origination_uuid={_clean(p['leg_id'])}",
            f"tongdai_tenant={_clean(envelope.tenant)}",
            f"tongdai_monitor_id={_clean(p['leg_id'])}",
            f"tongdai_monitor_mode={_clean(mode)}",
            "tongdai_direction=internal",
            f"tongdai_command_id={_clean(p['command_id'])}",
            "origination_caller_id_name='Giam sat cuoc goi'",
            f"origination_caller_id_number={_clean(p['extension'])}",
            "eavesdrop_enable_dtmf=true",
            # switch_ivr_eavesdrop_session on the agent's leg: whisper_bleg mixes into what
            # the agent hears (whisper), whisper_aleg into what the customer hears; both
            # are the three-way (barge).
            f"eavesdrop_whisper_aleg={'true' if mode == 'barge' else 'false'}",
            f"eavesdrop_whisper_bleg={'true' if mode in ('whisper', 'barge') else 'false'}",
            f"originate_timeout={int(p['timeout_s'])}",
        ])
        return _originate(variables, p, f"&eavesdrop({_clean(p['target_leg'])})")
    if kind == "send_dtmf":
        return f"uuid_recv_dtmf {_clean(p['leg_id'])} {_clean(p['digits'])}"
    if kind == "connect_call":
        return f"uuid_bridge {_clean(envelope.call_id)} {_clean(p['offer_id'])}"
    if kind == "hangup_leg":
        return f"uuid_kill {_clean(p['leg_id'])} {_clean(p.get('cause') or 'NORMAL_CLEARING')}"
    if kind == "transfer_leg":
        return (f"uuid_transfer {_clean(p['leg_id'])} {_clean(p['destination'])} XML "
                f"{_clean(p.get('context') or 'default')}")
    if kind == "play_announcement":
        path = _clean(p["path"])
        if p.get("then_music"):
            # The waiting music the dialplan chose (api/freeswitch/render.py sets it, and
            # turns it to silence before a bridge), expanded when the broadcast plays.
            path += "!${tongdai_waiting_music}"
        return f"uuid_broadcast {_clean(p['leg_id'])} {path} aleg"
    if kind == "break_playback":
        return f"uuid_break {_clean(p['leg_id'])}"
    if kind == "set_variable":
        return f"uuid_setvar {_clean(p['leg_id'])} {_clean(p['name'])} {_clean(p['value'])}"
    raise ValueError(f"not a routing command: {kind}")


def job_succeeded(kind: str, body: str) -> bool:
    """Did a bgapi job succeed? `+OK ...`, except `uuid_recv_dtmf`, which prints nothing
    when it worked (mod_commands) and `-ERR ...`/`-USAGE ...` when it did not."""
    if kind == "send_dtmf":
        return not body.strip().startswith(("-ERR", "-USAGE"))
    return body.startswith("+OK")


def refused(envelope: Envelope, legs: LegBook, now_s: float) -> str | None:
    """Why a decision must not run now, if it must not (pure): too old; an offer past its
    ring deadline; an offer or a bridge for a caller who already hung up on this node
    (ringing an agent for nobody leaves the agent's phone off-hook with no caller)."""
    age = now_s - envelope.occurred_at / 1e6
    if age > MAX_AGE_S:
        return f"-ERR expired: decided {age:.0f} s ago"
    p = envelope.payload
    if envelope.type == "offer_call" and age > float(p.get("timeout_s") or MAX_AGE_S):
        return (f"-ERR expired: the offer's {p.get('timeout_s')} s ring time passed before "
                f"it could run (decided {age:.1f} s ago)")
    if envelope.type in ("offer_call", "connect_call") and envelope.call_id and \
            legs.is_gone(envelope.call_id) and not p.get("callback"):
        return "-ERR caller gone: the caller hung up before this could run"
    if envelope.type == "hangup_leg" and p.get("cause") == "ORIGINATOR_CANCEL":
        info = legs.info(str(p.get("leg_id") or ""))
        if info is not None and info.get("offer_id") and (info.get("bridged")
                                                          or info.get("answered")):
            # The router gave the offer up (its ring time passed) before it heard the
            # answer: the log was slow, the phone was not. A cancel never cuts a call the
            # agent took; the router learns of the answer from the switch's events.
            return "-ERR answered: the agent took this offer; a cancel does not hang it up"
    return None



def start_offsets(consumer: Any, partitions: list, stop: threading.Event,
                  attempts: int = 20) -> None:
    """Set where each assigned partition is read from: its committed offset, else its end
    now. "latest" would be resolved only when fetching starts, and a decision sent
    meanwhile was skipped.

    Runs inside librdkafka's assignment callback, which must not raise: an exception
    there comes out of `consume()` as a `KafkaError` object that no `except` catches (it
    is no Exception), and it ended the decisions thread while the bridge went on without
    an actuator. A broker just started answers "not leader for partition" for a moment:
    asked again (bounded); then the partition starts at its logical end, said in the log."""
    from confluent_kafka import OFFSET_END, OFFSET_INVALID, KafkaException

    for attempt in range(attempts):
        try:
            committed = {(tp.topic, tp.partition): tp.offset
                         for tp in consumer.committed(partitions, timeout=10)}
            for tp in partitions:
                if committed.get((tp.topic, tp.partition), OFFSET_INVALID) < 0:
                    tp.offset = consumer.get_watermark_offsets(tp, timeout=10)[1]
                else:
                    tp.offset = committed[(tp.topic, tp.partition)]
            return
        except KafkaException as exc:
            log.warning("decisions consumer: start offsets not known yet (%s), attempt %d",
                        exc, attempt + 1)
            if stop.wait(0.5):
                return  # the bridge is stopping: no decision will be read
    log.warning("decisions consumer: start offsets unknown after %d attempts: reading from "
                "the end of each partition", attempts)
    for tp in partitions:
        tp.offset = OFFSET_END

class ClaimLog:
    """Command ids already executed (or being executed): survives restarts.

    A claim is written and flushed before its command runs, so it survives a crash of the
    process. The file is fsync'd by a thread of its own, at most every `sync_interval_s`:
    an fsync in the command's path cost hundreds of ms under disk load and, since the
    bridge's ESL reading shares that loop, stalled events as well. After a power loss the
    claims of the last interval may be gone, and a replayed decision of that interval
    could ring an agent a second time.
    """

    def __init__(self, directory: str, keep: int = 1_000_000,
                 sync_interval_s: float = 0.1) -> None:
        self.sync_interval_s = sync_interval_s
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path / "claimed.log"
        self.keep = keep
        self.ids: set[str] = set()
        if self.path.exists():
            lines = self.path.read_text().split()
            self.ids = set(lines[-keep:])
            if len(lines) > keep:  # compact: keep the most recent ids only
                self.path.write_text("\n".join(lines[-keep:]) + "\n")
        self._file = open(self.path, "a")
        self.syncs = 0
        self._dirty = threading.Event()
        self._closed = False
        self._syncer = threading.Thread(target=self._sync_loop, name="claim-log-fsync",
                                        daemon=True)
        self._syncer.start()

    def claim(self, command_id: str) -> bool:
        """True if this call claimed it; False if it was claimed before."""
        if command_id in self.ids:
            return False
        self._file.write(command_id + "\n")
        self._file.flush()
        self._dirty.set()
        self.ids.add(command_id)
        return True

    def _sync_loop(self) -> None:
        while True:
            self._dirty.wait()
            if self._closed:
                return
            self._dirty.clear()
            try:
                os.fsync(self._file.fileno())
                self.syncs += 1
            except (OSError, ValueError) as exc:  # closed under us, or a disk error
                if self._closed:
                    return
                log.warning("claim log fsync failed: %s", exc)
            time.sleep(self.sync_interval_s)

    def close(self) -> None:
        self._closed = True
        self._dirty.set()
        self._syncer.join(timeout=5)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


class Actuator:
    def __init__(self, settings: BridgeSettings, links: list, outbox: Any) -> None:
        self.settings = settings
        self.links = links
        self.outbox = outbox
        self.claims = ClaimLog(settings.actuator_state_dir)
        self.ready = threading.Event()  # the consumer has its partitions
        self.executed = 0
        self.duplicates = 0
        self.dead = 0  # decisions no bridge could ever run (malformed, no node)
        self.refused = 0  # not run, with the reason published (expired, caller gone, ...)
        self.foreign: dict[str, int] = {}  # decisions for nodes other bridges serve
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs: dict[str, tuple[Envelope, str]] = {}
        # Results that arrived before their bgapi reply was read: a quick job's
        # BACKGROUND_JOB can be dispatched by the reading greenlet before the sending one
        # resumes with the reply that names the job (job uuid -> body).
        self._early: OrderedDict[str, str] = OrderedDict()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._consume, name="decisions", daemon=True)
        self._greenlet: gevent.Greenlet | None = None
        self._done_greenlet: gevent.Greenlet | None = None
        # The decisions started and not yet marked done, in the order they came.
        self._running: deque[tuple[tuple[str, int], int, gevent.Greenlet]] = deque()
        self._started = gevent.event.Event()
        self._finished = gevent.event.Event()
        self._wake = gevent.event.Event()
        self._watcher = None
        for link in links:
            link.job_listener = self.on_job

    # ---- lifecycle
    def start(self) -> None:
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._wake.set)
        self._greenlet = gevent.spawn(self._execute_loop)
        self._done_greenlet = gevent.spawn(self._done_loop)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for greenlet in (self._greenlet, self._done_greenlet):
            if greenlet is not None:
                greenlet.kill(block=True, timeout=5)
        if self._watcher is not None:
            self._watcher.close()
        self.claims.close()

    # ---- consumer thread
    def _consume(self) -> None:
        """Decisions from Kafka on librdkafka (confluent-kafka, as the bridge's sender),
        because librdkafka moves partitions to their new leaders and rejoins its group by
        itself. kafka-python's consumer does not reliably: after a broker of a three-broker
        cluster is killed it can go on polling without an error and receive nothing (3 of
        4 tries of tests/integration/test_kafka_cluster.py), and under load its group join
        may never finish (tests/realfs)."""
        from confluent_kafka import Consumer, TopicPartition

        name = f"tongdai-actuator-{self.settings.bridge_name}"

        def on_assign(consumer, partitions) -> None:
            start_offsets(consumer, partitions, self._stop)
            consumer.assign(partitions)
            self.ready.set()
            log.info("actuator ready: reading decisions from %d partitions", len(partitions))

        while not self._stop.is_set():
            try:
                consumer = Consumer({
                    "bootstrap.servers": self.settings.kafka_bootstrap, "group.id": name,
                    # Static membership: a bridge restarted after a crash takes its
                    # partitions back at once. As a new member it waited for the dead
                    # one's session to time out (10 s) before executing any decision,
                    # while callers parked in the gap waited in silence.
                    "group.instance.id": name,
                    "client.id": name, "enable.auto.commit": False,
                    "auto.offset.reset": "latest", "session.timeout.ms": 10000,
                    "heartbeat.interval.ms": 1000, "max.poll.interval.ms": 60000,
                    # One fetch in flight per broker: a long wait on idle partitions holds
                    # new decisions back (ACD bench p99).
                    "fetch.wait.max.ms": 20, "logger": log})
                consumer.subscribe([topics.ROUTING_DECISIONS], on_assign=on_assign)
            except Exception as exc:
                log.warning("decisions consumer not available (%s); retrying", exc)
                self._stop.wait(2)
                continue
            try:
                while not self._stop.is_set():
                    batch = ready_records(consumer, 0.2, log)
                    for msg in batch:
                        self._inbox.put(((msg.topic(), msg.partition()), msg.offset(),
                                         msg.value()))
                    if batch and self._watcher is not None:
                        self._watcher.send()
                    offsets: dict[tuple[str, int], int] = {}
                    while True:
                        try:
                            tp, offset = self._done.get_nowait()
                        except queue.Empty:
                            break
                        offsets[tp] = max(offset + 1, offsets.get(tp, 0))
                    if offsets:  # not waited for: a lost commit only re-reads (claims dedupe)
                        consumer.commit(offsets=[TopicPartition(t, p, o)
                                                 for (t, p), o in offsets.items()],
                                        asynchronous=True)
            except Exception as exc:
                log.warning("decisions consumer failed (%s: %s); reconnecting",
                            type(exc).__name__, exc)
                self._stop.wait(1)
            finally:
                try:
                    consumer.close()
                except Exception:
                    pass

    # ---- gevent side
    def _execute_loop(self) -> None:
        """The decisions that arrived, each in a greenlet of its own, started in the order
        decided and as soon as they arrive: each runs until its command is on the wire
        and then waits for its reply, so the commands reach the switch in order without
        one waiting for the reply to the one before (one reply waits behind the events
        already on their way: executed one at a time, that wait queued 30 calls/s up to
        a second behind). Nor does a decision wait for the replies of those that came in
        an earlier poll: started a poll at a time, each poll's decisions waited until
        every reply of the poll before had come (30 calls/s on the switch: offer -> sent
        tracked sent -> reply: 190-960 ms p50). At most MAX_IN_FLIGHT wait for their
        replies at once. Done in order (`_done_loop`): an offset is committed once every
        decision before it is handled."""
        while True:
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            while len(self._running) < MAX_IN_FLIGHT:
                try:
                    tp, offset, value = self._inbox.get_nowait()
                except queue.Empty:
                    break
                self._running.append((tp, offset, gevent.spawn(self._handle, value)))
                self._started.set()
            if len(self._running) >= MAX_IN_FLIGHT:
                self._finished.wait(timeout=0.5)  # room again: look at the inbox again
                self._finished.clear()
                self._wake.set()

    def _done_loop(self) -> None:
        """Mark the decisions handled in the order they came, each once it is."""
        while True:
            if not self._running:
                self._started.wait(timeout=0.5)
                self._started.clear()
                continue
            tp, offset, greenlet = self._running[0]
            greenlet.join()
            self._running.popleft()
            self._done.put((tp, offset))
            self._finished.set()

    def _link_for(self, node: str):
        for link in self.links:
            if node in (link.core_uuid, link.node.address):
                return link
        return None

    def _handle(self, value: bytes) -> None:
        try:
            envelope = decode(value)
        except DecodeError as exc:
            self._dead_letter(value, f"malformed decision: {exc}")
            return
        node = envelope.payload.get("node", "")
        if not node:
            self._dead_letter(value, f"{envelope.type} {envelope.payload.get('command_id')} for "
                                     f"call {envelope.call_id} names no node")
            return
        link = self._link_for(node)
        if link is None:
            # Served by another bridge (each reads every decision), or by none: the router
            # then hears nothing back and its offer deadline and snapshots take over.
            if node not in self.foreign:
                log.info("decisions for this node are left to the bridge that serves it",
                         extra={"node": node})
            self.foreign[node] = self.foreign.get(node, 0) + 1
            return
        command_id = envelope.payload.get("command_id")
        if (envelope.type, envelope.version) not in PAYLOADS or not command_id:
            self._outcome(envelope, False, f"-ERR not an executable decision: {envelope.type}")
            return
        refusal = refused(envelope, link.legs, time.time())
        if refusal:
            self.refused += 1
            log.info("%s %s not run: %s", envelope.type, command_id, refusal,
                     extra=fields(envelope))
            self._outcome(envelope, False, refusal)
            return
        if not self.claims.claim(command_id):
            self.duplicates += 1
            log.info("command %s already executed; not repeating it", command_id,
                     extra=fields(envelope))
            return
        if not link.connected.wait(timeout=5):
            self._outcome(envelope, False, "-ERR node not connected")
            return
        if envelope.type == "request_snapshot":
            try:
                link.snapshot("requested")
            except Exception as exc:  # the node dropped while answering
                self._outcome(envelope, False, f"-ERR {type(exc).__name__}: {exc}")
                return
            self._outcome(envelope, True, "+OK snapshot published")
            return
        try:
            line = esl_command(envelope)
            sent = time.monotonic()
            reply = link.connection.send(f"bgapi {line}")
            reply_ms = round((time.monotonic() - sent) * 1000, 1)
        except Exception as exc:  # node dropped mid-command, bad payload
            self._outcome(envelope, False, f"-ERR {type(exc).__name__}: {exc}")
            return
        self.executed += 1
        if not reply.ok or not reply.job_uuid:
            self._outcome(envelope, False, reply.text)
            return
        log.info("%s %s -> job %s", envelope.type, command_id, reply.job_uuid,
                 extra=fields(envelope, reply_ms=reply_ms))
        self._jobs[reply.job_uuid] = (envelope, line.split(" ", 1)[0])
        early = self._early.pop(reply.job_uuid, None)
        if early is not None:
            self.on_job(reply.job_uuid, early)

    def _dead_letter(self, raw: bytes, reason: str) -> None:
        self.dead += 1
        log.warning("decision dead-lettered: %s", reason)
        self.outbox.put(dead_letter(topics.ROUTING_DECISIONS, reason, raw, source="actuator"))

    def on_job(self, job_uuid: str, body: str) -> None:
        """A BACKGROUND_JOB arrived on some node: close the command it belongs to."""
        entry = self._jobs.pop(job_uuid, None)
        if entry is None:
            self._early[job_uuid] = body  # maybe ours, its reply not read yet (or another's)
            while len(self._early) > EARLY_JOBS_KEPT:
                self._early.popitem(last=False)
        else:
            envelope, _ = entry
            self._outcome(envelope, job_succeeded(envelope.type, body), body.strip(), job_uuid)

    def _outcome(self, envelope: Envelope, ok: bool, result: str,
                 job_uuid: str | None = None) -> None:
        command_id = str(envelope.payload.get("command_id") or envelope.event_id)
        at = now_us()
        self.outbox.put(Envelope(
            event_id=deterministic_id("outcome", command_id), type="command_executed",
            version=1, occurred_at=at, tenant=envelope.tenant,
            source=str(envelope.payload.get("node") or "actuator"), seq=None,
            call_id=envelope.call_id,
            payload={"command_id": command_id, "command": envelope.type, "ok": ok,
                     "result": result, "job_uuid": job_uuid}))
