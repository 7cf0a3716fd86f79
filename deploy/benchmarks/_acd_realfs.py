"""`tongdai bench acd --freeswitch`: the product beside mod_callcenter on one real switch.

One FreeSWITCH built from source (deploy/freeswitch) is started with fs-conf plus an
overlay of the bench's own (never the product's tenants): mod_callcenter loaded, a queue
`tongdai_bench@default` (longest-idle-agent) with one tier per agent, and a static number
(`ccbench`, which the API does not know, so the switch falls back to the overlay's
dialplan) that answers and enters that queue. The product runs as in tests/realfs: the
API (mod_xml_curl: directory and dialplan), a routing worker and the bridge of its own, a
tenant of its own applied with `tongdai config apply`: a DID straight to a queue the
switch connects (`connect: switch`), N agents, and N more extensions for mod_callcenter's
agents (the same directory, so both sides' originates look the phone up the same way).

Phones are SIPp: one UAS per side for all its agents (each extension registered with its
own digest credentials, its contact that UAS's port), ringing `--ring-ms` then answering,
and hanging up `--talk-ms` after the answer; callers are one SIPp UAC per phase at a fixed
rate, waiting (up to `--patience-s`) for the switch's BYE. For each rate the product's
phase runs, then mod_callcenter's, back to back; the bench's own event socket reads the
switch's events for both, so every figure is on the switch's clock (Event-Date-Timestamp,
1 ms steps with fs-conf's 1ms-timer):

- offer: caller queued (its CHANNEL_PARK; mod_callcenter's `member-queue-start`) to the
  first agent leg's CHANNEL_CREATE (the switch sends the INVITE in that microsecond);
- connect: the agent leg's CHANNEL_ANSWER to the CHANNEL_BRIDGE that joins it to a caller
  (the dead air the agent hears);
- lost bridges: an agent leg that answered while its caller was still waiting and was
  never bridged; orphaned legs: an answered agent leg bridged to nobody that stayed up
  more than `ORPHAN_S` (or was still up at the end).
The product's stages come from Kafka record timestamps (same machine, same clock). Kafka
and ClickHouse are the run's own (`--stack private`, the default: on the shared broker any
other deployment's worker routes the run's calls too) or the local stack (`--stack shared`).
The run holds /tmp/tongdai-freeswitch.lock (one switch at a time on the machine), unless a
process it descends from already holds it (`flock /tmp/tongdai-freeswitch.lock ...`).
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path

from ._common import bench_stack, cpu_s, pct, tone_pcap, wait_log

ROOT = Path(__file__).resolve().parents[2]
FS_CONF = ROOT / "fs-conf"
LOCK = "/tmp/tongdai-freeswitch.lock"
CC_QUEUE = "tongdai_bench@default"
CC_NUMBER = "ccbench"
ORPHAN_S = 2.0
#: the product's switch refuses sessions above this rate (fs-conf's 60 is a deployment's
#: choice); the bench raises it for both sides so that it measures the ACDs, not the limit
SESSIONS_PER_S = 500
EVENTS = ("CHANNEL_CREATE CHANNEL_PARK CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE "
          "CUSTOM callcenter::info")

SDP = """v=0
o=sipp 53655765 2353687637 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
"""

# Every agent of a side behind one UAS: rings, answers, talks, hangs up. A CANCEL while
# ringing (the caller gone, a ring-all lost) or a BYE from the switch while talking ends
# the call as the phone lives it. The BYE's headers are the INVITE's, swapped.
AGENT = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench agent">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="peer"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="me"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="peer_uri"/>
      <ereg regexp=".*" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]agent[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port]>
Content-Length: 0

]]></send>
  <recv request="CANCEL" timeout="@RING_MS@" ontimeout="answer"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]agent[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]agent[call_number]
[last_Call-ID:]
CSeq:[$invite_cseq]
Content-Length: 0

]]></send>
  <recv request="ACK" next="end"/>
  <label id="answer"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]agent[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

@SDP@]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE" timeout="@TALK_MS@" ontimeout="hangup"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <nop next="end"/>
  <label id="hangup"/>
  <send retrans="500"><![CDATA[
BYE [$peer_uri] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: [$me];tag=[pid]agent[call_number]
To: [$peer]
Call-ID: [call_id]
CSeq: 1 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
  <label id="end"/>
</scenario>
"""

# A caller: INVITE to the number, then waits for the switch's BYE (the agent hung up after
# talking); gives up and hangs up itself after @PATIENCE_MS@.
CALLER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:0903[call_number]@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:0903[call_number]@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: sipp-caller
Content-Type: application/sdp
Content-Length: [len]

@SDP@]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:0903[call_number]@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:0903[call_number]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  @VOICE@
  <recv request="BYE" timeout="@PATIENCE_MS@" ontimeout="giveup"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <nop next="end"/>
  <label id="giveup"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:0903[call_number]@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
  <label id="end"/>
</scenario>
"""


# --- the machine's FreeSWITCH lock ------------------------------------------------------

def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return pids


def _lock_holders(path: str) -> set[int]:
    st = os.stat(path)
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = set()
    with open("/proc/locks") as f:
        for line in f:
            parts = line.split()
            # "1: FLOCK  ADVISORY  WRITE 1234 00:2b:5678 0 EOF" ("->" marks a waiter)
            if "->" in parts or len(parts) < 6:
                continue
            if parts[1] == "FLOCK" and parts[5].lower() == ident:
                holders.add(int(parts[4]))
    return holders


def switch_lock(path: str = LOCK) -> int | None:
    """Hold the machine's one-FreeSWITCH lock: the fd that holds it, or None when a process
    this one descends from already holds it (`flock LOCK tongdai bench ...`)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        if _lock_holders(path) & _ancestors():
            os.close(fd)
            return None
    print(f"bench acd: waiting for {path} (another FreeSWITCH runs)", file=sys.stderr)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


# --- ports, processes --------------------------------------------------------------------

def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1 (SIP listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def rtp_block(size: int) -> tuple[int, int]:
    """An even-aligned UDP range nobody holds now (sampled every 20 ports)."""
    rng = random.Random()
    for _ in range(50):
        start = rng.randrange(20000, 60000 - size, 2)
        held = []
        try:
            for port in range(start, start + size, 20):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("127.0.0.1", port))
            return start, start + size - 1
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free RTP range")


def load1() -> float:
    return os.getloadavg()[0]


def start(kind: str, folder: Path, env: dict[str, str]) -> subprocess.Popen:
    """`tongdai <kind>` as its own process, its output in folder/<kind>.log."""
    log = folder / f"{kind}.log"
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", kind], env={**os.environ, **env},
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    proc.log_path = str(log)  # type: ignore[attr-defined]
    return proc


def stop(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tongdai(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    done = subprocess.run([sys.executable, "-m", "deploy.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"tongdai {' '.join(args[:2])} failed: "
                           f"{(done.stdout + done.stderr)[-2000:]}")
    return done.stdout


# --- the switch's configuration overlay ---------------------------------------------------

def callcenter_conf(domain: str, exts: list[str], wrapup_s: int) -> str:
    agents = "\n".join(
        f'      <agent name="ccb{ext}" type="callback" contact="user/{ext}@{domain}" '
        f'status="Available" max-no-answer="0" wrap-up-time="{wrapup_s}" '
        f'reject-delay-time="1" busy-delay-time="1" no-answer-delay-time="1"/>' for ext in exts)
    tiers = "\n".join(f'      <tier agent="ccb{ext}" queue="{CC_QUEUE}" level="1" position="1"/>'
                      for ext in exts)
    return f"""<include>
  <!-- The ACD bench on a real switch: mod_callcenter's side of the comparison. -->
  <configuration name="callcenter.conf" description="CallCenter (bench)">
    <settings>
      <param name="truncate-tiers-on-load" value="true"/>
      <param name="truncate-agents-on-load" value="true"/>
    </settings>
    <queues>
      <queue name="{CC_QUEUE}">
        <param name="strategy" value="longest-idle-agent"/>
        <param name="moh-sound" value="$${{hold_music}}"/>
        <param name="time-base-score" value="system"/>
        <param name="max-wait-time" value="0"/>
        <param name="max-wait-time-with-no-agent" value="0"/>
        <param name="max-wait-time-with-no-agent-time-reached" value="5"/>
        <param name="tier-rules-apply" value="false"/>
        <param name="tier-rule-wait-second" value="300"/>
        <param name="tier-rule-wait-multiply-level" value="true"/>
        <param name="tier-rule-no-agent-no-wait" value="false"/>
        <param name="discard-abandoned-after" value="60"/>
        <param name="abandoned-resume-allowed" value="false"/>
      </queue>
    </queues>
    <agents>
{agents}
    </agents>
    <tiers>
{tiers}
    </tiers>
  </configuration>
</include>
"""


CC_DIALPLAN = f"""<include>
  <!-- The ACD bench on a real switch: a carrier's call to {CC_NUMBER} enters mod_callcenter's
       queue (answered first, as the product's DIDs are). -->
  <extension name="bench_callcenter">
    <condition field="destination_number" expression="^{CC_NUMBER}$">
      <action application="set" data="hangup_after_bridge=true"/>
      <action application="answer"/>
      <action application="callcenter" data="{CC_QUEUE}"/>
      <action application="hangup"/>
    </condition>
  </extension>
</include>
"""


def overlay(folder: Path, domain: str, cc_exts: list[str], wrapup_s: int) -> Path:
    """fs-conf plus the bench's mod_callcenter queue, in a folder of the run's own."""
    src = folder / "fs-conf"
    shutil.copytree(FS_CONF, src, ignore=shutil.ignore_patterns("bin"))
    modules = src / "autoload_configs" / "modules.conf.xml"
    text = modules.read_text()
    modules.write_text(text.replace('<load module="mod_dialplan_xml"/>',
                                    '<load module="mod_dialplan_xml"/>\n'
                                    '      <load module="mod_callcenter"/>'))
    (src / "autoload_configs" / "callcenter.conf.xml").write_text(
        callcenter_conf(domain, cc_exts, wrapup_s))
    (src / "dialplan" / "public" / "zz_bench_callcenter.xml").write_text(CC_DIALPLAN)
    vars_xml = src / "vars.xml"
    text, n = re.subn(r"tongdai_sessions_per_second=\d+",
                      f"tongdai_sessions_per_second={SESSIONS_PER_S}", vars_xml.read_text())
    if n != 1:
        raise RuntimeError("fs-conf/vars.xml: no tongdai_sessions_per_second to raise")
    vars_xml.write_text(text)
    return src


# --- the event socket -----------------------------------------------------------------------

class EventSocket:
    """An inbound event socket that keeps every event's raw text (parsed after the run, so
    that reading costs the switch's host as little as possible during it)."""

    def __init__(self, port: int, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.raw: list[bytes] = []
        self.replies: list[dict[str, str]] = []
        self.cond = threading.Condition()
        head, _ = self._frame()
        assert head.get("Content-Type") == "auth/request", head
        self.sock.sendall(f"auth {password}\n\n".encode())
        head, _ = self._frame()
        if not head.get("Reply-Text", "").startswith("+OK"):
            raise ConnectionError(f"ESL auth refused: {head.get('Reply-Text')}")
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _frame(self) -> tuple[dict[str, str], bytes]:
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("ESL connection closed")
            self.buf += chunk
        head, rest = self.buf.split(b"\n\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().splitlines() if ": " in line)
        length = int(headers.get("Content-Length", "0"))
        while len(rest) < length:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("ESL connection closed")
            rest += chunk
        self.buf = rest[length:]
        return headers, rest[:length]

    def _loop(self) -> None:
        try:
            while True:
                head, body = self._frame()
                if head.get("Content-Type") == "text/event-plain":
                    self.raw.append(body)
                else:
                    with self.cond:
                        self.replies.append({**head, "_body": body.decode(errors="replace")})
                        self.cond.notify_all()
        except (ConnectionError, OSError):
            with self.cond:
                self.cond.notify_all()

    def command(self, text: str, timeout: float = 30) -> str:
        with self.cond:
            before = len(self.replies)
            self.sock.sendall(text.rstrip("\n").encode() + b"\n\n")
            if not self.cond.wait_for(lambda: len(self.replies) > before, timeout):
                raise TimeoutError(f"no reply to {text!r}")
            reply = self.replies[before]
        return reply["_body"] or reply.get("Reply-Text", "")

    def api(self, command: str) -> str:
        return self.command(f"api {command}")

    def take(self) -> list[bytes]:
        out, self.raw = self.raw, []
        return out

    def close(self) -> None:
        try:
            self.sock.sendall(b"exit\n\n")
        except OSError:
            pass
        self.sock.close()


WANTED = ("Event-Name", "Event-Date-Timestamp", "Unique-ID", "Call-Direction", "Event-Subclass",
          "CC-Action", "CC-Queue", "CC-Member-Session-UUID", "Bridge-A-Unique-ID",
          "Bridge-B-Unique-ID", "variable_tongdai_call_id", "variable_tongdai_queue",
          "variable_tongdai_tenant", "variable_cc_member_session_uuid",
          "variable_tongdai_offer_id", "Hangup-Cause", "variable_tongdai_won",
          "variable_tongdai_caller", "variable_tongdai_bridged")


def parse(raw: bytes) -> dict[str, str]:
    """The headers the bench reads, URL-decoded."""
    head = raw.split(b"\n\n", 1)[0].decode(errors="replace")
    out = {}
    for line in head.split("\n"):
        name, sep, value = line.partition(": ")
        if sep and name in WANTED:
            out[name] = urllib.parse.unquote(value)
    return out


# --- SIP registration (digest) ---------------------------------------------------------------

def register(sip_port: int, domain: str, ext: str, password: str, contact_port: int) -> None:
    """REGISTER `ext`@`domain` with its digest credentials, its contact 127.0.0.1:contact_port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        local = s.getsockname()[1]
        call_id, tag = uuid.uuid4().hex, uuid.uuid4().hex[:10]
        auth = ""
        for cseq in (1, 2):
            branch = "z9hG4bK" + uuid.uuid4().hex[:16]
            msg = (f"REGISTER sip:{domain} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch={branch};rport\r\n"
                   f"From: <sip:{ext}@{domain}>;tag={tag}\r\nTo: <sip:{ext}@{domain}>\r\n"
                   f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                   f"Contact: <sip:{ext}@127.0.0.1:{contact_port}>\r\n{auth}"
                   f"Max-Forwards: 70\r\nExpires: 3600\r\nUser-Agent: tongdai-bench\r\n"
                   f"Content-Length: 0\r\n\r\n").encode()
            reply = ""
            for _ in range(8):
                s.sendto(msg, ("127.0.0.1", sip_port))
                try:
                    while True:
                        reply = s.recv(65536).decode(errors="replace")
                        if not reply.startswith("SIP/2.0 100"):
                            break
                    break
                except TimeoutError:
                    continue
            code = reply.split(" ", 2)[1] if reply.startswith("SIP/2.0 ") else "no reply"
            if code == "200":
                return
            if code != "401" or cseq == 2:
                raise RuntimeError(f"REGISTER {ext}@{domain}: {code}")
            challenge = re.search(r"^WWW-Authenticate: Digest (.*)$", reply, re.M | re.I)
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge[1].strip()))
            uri = f"sip:{domain}"
            ha1 = hashlib.md5(f"{ext}:{params['realm']}:{password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
            cnonce, nc = uuid.uuid4().hex[:8], "00000001"
            if "auth" in params.get("qop", "").split(","):
                resp = hashlib.md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}"
                                   .encode()).hexdigest()
                extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
            else:
                resp = hashlib.md5(f"{ha1}:{params['nonce']}:{ha2}".encode()).hexdigest()
                extra = ""
            auth = (f'Authorization: Digest username="{ext}", realm="{params["realm"]}", '
                    f'nonce="{params["nonce"]}", uri="{uri}", response="{resp}", '
                    f'algorithm=MD5{extra}\r\n')


def register_until(sip_port: int, domain: str, ext: str, password: str, contact_port: int,
                   timeout: float) -> None:
    """`register`, again while the switch refuses it (403), for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return register(sip_port, domain, ext, password, contact_port)
        except RuntimeError as exc:
            if not str(exc).endswith(": 403") or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# --- one run -----------------------------------------------------------------------------------

@dataclass
class Side:
    name: str  # "tongdai" or "mod_callcenter"
    number: str  # what the callers dial
    uas_port: int
    exts: list[str]
    uas: subprocess.Popen | None = None


@dataclass
class Leg:
    caller: str = ""
    created: float | None = None
    answered: float | None = None
    bridged: float | None = None
    ended: float | None = None
    cause: str = ""
    uuid: str = ""
    #: the inline connect's variables at hangup (what the fence and uuid_bridge said)
    connect: str = ""


@dataclass
class Caller:
    queued: float | None = None
    bridged: float | None = None
    ended: float | None = None
    legs: list[str] = field(default_factory=list)


def analyse(events: list[dict[str, str]], side: str, tenant: str) -> tuple[dict, dict]:
    """Callers and agent legs of one side, from the switch's events (seconds)."""
    callers: dict[str, Caller] = {}
    legs: dict[str, Leg] = {}
    times: dict[tuple[str, str], float] = {}  # (event name, leg) -> first time
    bridges: list[tuple[str, str, float]] = []
    causes: dict[str, str] = {}
    connects: dict[str, str] = {}
    for e in events:
        name, uid = e.get("Event-Name", ""), e.get("Unique-ID", "")
        at = int(e.get("Event-Date-Timestamp", "0")) / 1e6
        times.setdefault((name, uid), at)
        if name == "CHANNEL_HANGUP_COMPLETE":
            causes.setdefault(uid, e.get("Hangup-Cause", ""))
            connects.setdefault(uid, " ".join(
                f"{n}={e.get('variable_tongdai_' + n, '-')!r}" for n in ("won", "caller", "bridged")))
        if e.get("Call-Direction") == "outbound":
            caller_of = (e.get("variable_tongdai_call_id")
                         if e.get("variable_tongdai_tenant") == tenant else None) \
                if side == "tongdai" else e.get("variable_cc_member_session_uuid")
            if caller_of and uid not in legs:
                legs[uid] = Leg(caller_of)
        elif side == "tongdai" and name == "CHANNEL_PARK" \
                and e.get("variable_tongdai_tenant") == tenant and e.get("variable_tongdai_queue"):
            callers.setdefault(uid, Caller()).queued = at
        if side == "mod_callcenter" and name == "CUSTOM" \
                and e.get("CC-Action") == "member-queue-start" and e.get("CC-Queue") == CC_QUEUE:
            callers.setdefault(e.get("CC-Member-Session-UUID", ""), Caller()).queued = at
        if name == "CHANNEL_BRIDGE":
            bridges.append((e.get("Bridge-A-Unique-ID", ""), e.get("Bridge-B-Unique-ID", ""), at))
    for uid, leg in legs.items():
        leg.created = times.get(("CHANNEL_CREATE", uid))
        leg.answered = times.get(("CHANNEL_ANSWER", uid))
        leg.ended = times.get(("CHANNEL_HANGUP_COMPLETE", uid))
        leg.cause = causes.get(uid, "")
        leg.uuid, leg.connect = uid, connects.get(uid, "")
        if leg.caller in callers:
            callers[leg.caller].legs.append(uid)
    for uid, c in callers.items():
        c.ended = times.get(("CHANNEL_HANGUP_COMPLETE", uid))
    for a, b, at in bridges:
        for one, other in ((a, b), (b, a)):
            if one in legs and other == legs[one].caller and legs[one].bridged is None:
                legs[one].bridged = at
            if one in callers and callers[one].bridged is None:
                callers[one].bridged = at
    return callers, legs


def figures_of(callers: dict[str, Caller], legs: dict[str, Leg], prefix: str,
               end_at: float) -> dict[str, float]:
    offer, connect = [], []
    for c in callers.values():
        firsts = [legs[u].created for u in c.legs if legs[u].created is not None]
        if c.queued is not None and firsts:
            offer.append((min(firsts) - c.queued) * 1000)
    lost = orphaned = 0
    for leg in legs.values():
        if leg.answered is None:
            continue
        if leg.bridged is not None:
            connect.append((leg.bridged - leg.answered) * 1000)
            continue
        caller = callers.get(leg.caller)
        caller_waiting = caller is not None and (
            caller.bridged is None or caller.bridged > leg.answered) and (
            caller.ended is None or caller.ended > leg.answered)
        if caller_waiting:
            lost += 1
            ms = lambda t: "-" if t is None else f"{(t - leg.answered) * 1000:.0f}"  # noqa: E731
            print(f"  {prefix}: lost bridge: agent leg ended {leg.cause or '(up)'} "
                  f"{ms(leg.ended)} ms after its answer; its caller ended "
                  f"{ms(caller.ended if caller else None)} ms after it, first bridged "
                  f"{ms(caller.bridged if caller else None)} ms after it (leg {leg.uuid}, "
                  f"caller {leg.caller}; {leg.connect})", file=sys.stderr)
        lived = (leg.ended if leg.ended is not None else end_at) - leg.answered
        if lived > ORPHAN_S:
            orphaned += 1
    queued = [c for c in callers.values() if c.queued is not None]
    return {
        f"{prefix}_offer_p50_ms": round(pct(offer, 0.50), 1),
        f"{prefix}_offer_p90_ms": round(pct(offer, 0.90), 1),
        f"{prefix}_offer_p99_ms": round(pct(offer, 0.99), 1),
        f"{prefix}_connect_p50_ms": round(pct(connect, 0.50), 1),
        f"{prefix}_connect_p99_ms": round(pct(connect, 0.99), 1),
        f"{prefix}_queued_count": len(queued),
        f"{prefix}_bridged_count": sum(1 for c in queued if c.bridged is not None),
        f"{prefix}_not_bridged_count": sum(1 for c in queued if c.bridged is None),
        f"{prefix}_agent_legs_count": len(legs),
        f"{prefix}_lost_bridges_count": lost,
        f"{prefix}_orphaned_legs_count": orphaned,
    }


def job_times(bridge_log: Path | None, tenant: str) -> dict[str, tuple[float, float]]:
    """call id -> (when the bridge sent the call's first `bgapi originate` of an offer,
    when it read the switch's `+OK Job-UUID` reply), from its INFO line "offer_call ... ->
    job ..." (its time and `reply_ms`): by the reply the switch has read the command and
    started the thread that runs it."""
    import orjson

    out: dict[str, tuple[float, float]] = {}
    if bridge_log is None or not bridge_log.exists():
        return out
    with bridge_log.open("rb") as f:
        for raw in f:
            if b"offer_call" not in raw or b"-> job" not in raw:
                continue
            try:
                line = orjson.loads(raw)
                if line.get("tenant") != tenant or not line.get("call_id"):
                    continue
                at = datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                    tzinfo=timezone.utc).timestamp()
            except (ValueError, KeyError, TypeError):
                continue
            out.setdefault(line["call_id"], (at - float(line.get("reply_ms") or 0) / 1000, at))
    return out


def stages(bootstrap: str, marks: dict, tenant: str, callers: dict[str, Caller],
           legs: dict[str, Leg], prefix: str, bridge_log: Path | None = None
           ) -> dict[str, float]:
    """The product's park -> fact -> offer -> agent leg, from Kafka record timestamps; the
    park -> fact stage also split where the bridge's record of the park was written (the
    switch to the bridge's producer | Kafka and the worker). The park's time is the switch's
    Event-Date-Timestamp, in 1 ms steps with fs-conf's 1ms-timer. Park -> published is
    mostly the event socket's delivery (deploy/freeswitch/README.md: its listener sleeps
    20 ms in a poll unless the client's wake newlines end it). Offer -> agent leg is split
    where the bridge sent its `bgapi` and read the switch's reply (`job_times`): offer ->
    sent is Kafka and the bridge; sent -> job the switch's command reader (and the way
    back); job -> leg the switch's own (its bgapi thread, the directory lookup over
    mod_xml_curl, sofia's INVITE)."""
    import orjson
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    consumer.assign(list(marks))
    for tp, offset in marks.items():
        consumer.seek(tp, offset)
    ends = consumer.end_offsets(list(marks))
    enqueued: dict[str, float] = {}
    offered: dict[str, float] = {}
    published: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in marks):
        for _tp, batch in consumer.poll(timeout_ms=500, max_records=20000).items():
            for r in batch:
                if tenant.encode() not in r.value:
                    continue
                env = orjson.loads(r.value)
                if env["tenant"] != tenant:
                    continue
                if env["type"] == "call_enqueued":
                    enqueued.setdefault(env["call_id"], r.timestamp / 1000)
                elif env["type"] == "offer_call":
                    offered.setdefault(env["call_id"], r.timestamp / 1000)
                elif env["type"] == "channel_parked":
                    published.setdefault(env["call_id"], r.timestamp / 1000)
    consumer.close()
    jobs = job_times(bridge_log, tenant)
    park_fact, fact_offer, offer_leg, park_published, published_fact = [], [], [], [], []
    offer_sent: list[float] = []
    sent_job: list[float] = []
    offer_job: list[float] = []
    job_leg: list[float] = []
    per_call: list[tuple[float, str]] = []
    for call, c in callers.items():
        firsts = [legs[u].created for u in c.legs if legs[u].created is not None]
        if c.queued is None or call not in enqueued or call not in offered or not firsts:
            continue
        park_fact.append((enqueued[call] - c.queued) * 1000)
        fact_offer.append((offered[call] - enqueued[call]) * 1000)
        offer_leg.append((min(firsts) - offered[call]) * 1000)
        if call in jobs:
            sent, replied = jobs[call]
            offer_sent.append((sent - offered[call]) * 1000)
            sent_job.append((replied - sent) * 1000)
            offer_job.append((replied - offered[call]) * 1000)
            job_leg.append((min(firsts) - replied) * 1000)
        if call in published:
            park_published.append((published[call] - c.queued) * 1000)
            published_fact.append((enqueued[call] - published[call]) * 1000)
            per_call.append(((min(firsts) - c.queued) * 1000,
                             f"park->published {park_published[-1]:.0f}, published->fact "
                             f"{published_fact[-1]:.0f}, fact->offer {fact_offer[-1]:.0f}, "
                             f"offer->leg {offer_leg[-1]:.0f}"
                             + (f" (sent at {(jobs[call][0] - offered[call]) * 1000:.0f}"
                                f", job at {(jobs[call][1] - offered[call]) * 1000:.0f})"
                                if call in jobs else "")))
    if per_call:  # where the tail's time went
        per_call.sort(reverse=True)
        print(f"  {prefix}: the slowest offers (ms): " + "; ".join(
            f"{total:.0f} = {parts}" for total, parts in per_call[:3]), file=sys.stderr)
    out = {}
    for name, values in (("park_to_fact", park_fact), ("park_to_published", park_published),
                         ("published_to_fact", published_fact), ("fact_to_offer", fact_offer),
                         ("offer_to_leg", offer_leg), ("offer_to_sent", offer_sent),
                         ("sent_to_job", sent_job), ("offer_to_job", offer_job),
                         ("job_to_leg", job_leg)):
        out[f"{prefix}_stage_{name}_p50_ms"] = round(pct(values, 0.5), 1)
        out[f"{prefix}_stage_{name}_p99_ms"] = round(pct(values, 0.99), 1)
    return out


def thread_priorities(pid: str) -> dict[str, int]:
    """How many threads of process `pid` run in each realtime class and priority
    (`FIFO 1`, `RR 2`, ...; `other` for normal ones), from /proc/PID/task/*/stat."""
    names = {0: "other", 1: "FIFO", 2: "RR", 3: "batch", 5: "idle"}
    counts: dict[str, int] = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        rt_priority, policy = int(fields[37]), int(fields[38])
        name = names.get(policy, str(policy))
        key = f"{name} {rt_priority}" if rt_priority else name
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


#: `--priority`: the product's (and the run's Kafka's) round-robin realtime priority
PRIORITY_OF = {"switch": 1, "above-switch": 2}


def tree_pids(pid: int) -> list[int]:
    """`pid` and its living descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def run_queue_wait(pids: list[int]) -> tuple[float, int]:
    """(ns spent runnable but waiting for a CPU, time slices run) so far, summed over
    every thread of `pids` (/proc/PID/task/TID/schedstat)."""
    wait, slices = 0.0, 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                _run, waited, ran = stat.read_text().split()
            except (OSError, ValueError):
                continue
            wait += int(waited)
            slices += int(ran)
    return wait, slices


def cpu_groups(procs: dict[str, subprocess.Popen], folder: Path
               ) -> dict[str, tuple[float, float, int]]:
    """Per group (the switch, the product's processes, the run's Kafka): (CPU seconds,
    run-queue wait ns, time slices) so far."""
    groups = {name: tree_pids(procs[name].pid) for name in ("freeswitch", "api", "worker",
                                                            "bridge") if name in procs}
    groups["kafka"] = [int(pid) for pid in subprocess.run(
        ["pgrep", "-f", f"java.*{folder}"], capture_output=True, text=True).stdout.split()]
    out = {}
    for name, pids in groups.items():
        spent = 0.0
        for pid in pids:
            try:
                spent += cpu_s(pid)
            except OSError:
                continue
        out[name] = (spent, *run_queue_wait(pids))
    return out


def kafka_like_the_switch(folder: Path, priority: int) -> None:
    """`--priority switch|above-switch`: FreeSWITCH runs SCHED_FIFO, its call threads at
    priority 1 and its control threads (event dispatch, sofia's worker, mod_callcenter's
    agent dispatch) at 99; the product's bridge, worker and API run
    TONGDAI_SCHEDULING=realtime, round-robin at `priority` (1: beside the call threads,
    2: ahead of them), and the run's Kafka, on the call path too, is put there with chrt.
    Prints the switch's threads by class and priority, as measured."""
    kafka = subprocess.run(["pgrep", "-f", f"java.*{folder}"], capture_output=True,
                           text=True).stdout.split()
    refused = [pid for pid in kafka
               if subprocess.run(["chrt", "-a", "-r", "-p", str(priority), pid],
                                 capture_output=True).returncode != 0]
    print(f"bench acd --freeswitch: the product and {len(kafka) - len(refused)} Kafka "
          f"process(es) scheduled round-robin realtime, priority {priority}"
          + (f"; refused for {len(refused)} (needs CAP_SYS_NICE): they run normal"
             if refused else ""), file=sys.stderr)
    for pid in subprocess.run(["pgrep", "-f", f"bin/freeswitch .*{folder}"],
                              capture_output=True, text=True).stdout.split():
        print(f"bench acd --freeswitch: the switch's threads (pid {pid}): "
              + ", ".join(f"{n} {k}" for k, n in thread_priorities(pid).items()),
              file=sys.stderr)


def _sipp(argv: list[str], folder: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(["sipp", *argv, "-i", "127.0.0.1", "-nostdin", "-trace_err",
                             "-error_file", str(folder / f"{name}_errors.log")],
                            cwd=folder, stdout=open(folder / f"{name}.out", "w"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def channels_count(esl: EventSocket) -> int:
    text = esl.api("show channels count")
    found = re.search(r"(\d+) total", text)
    return int(found[1]) if found else -1


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def leftovers(esl: EventSocket) -> tuple[int, int]:
    """Per-call state the switch still holds once every call is over: the connect fence's
    keys (mod_hash realm tongdai_connect) and scheduled tasks grouped by a call's uuid
    (the connect's failsafe hangup). Both must be 0: anything else grows on a switch that
    runs for months."""
    keys = sum(1 for line in esl.api("hash_dump db tongdai_connect").splitlines()
               if line.startswith("D/"))
    tasks = 0
    for line in esl.api("show tasks").splitlines():
        fields = line.split(",")
        if len(fields) > 2 and _UUID.match(fields[2]):
            tasks += 1
    return keys, tasks


def leftovers_settled(esl: EventSocket, wanted: tuple[int, int] = (0, 0),
                      timeout: float = 4.0) -> tuple[int, int]:
    """`leftovers` once it reads `wanted` or `timeout` passed: `show tasks` reads the core
    db, written a moment after the scheduler, and a losing leg's failsafe lives 3 s."""
    deadline = time.monotonic() + timeout
    while (got := leftovers(esl)) != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    return got


def wait_idle(esl: EventSocket, timeout: float) -> int:
    """Wait (bounded) until the switch has no channel; the channels left."""
    deadline = time.monotonic() + timeout
    left = channels_count(esl)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = channels_count(esl)
    return left


def run(args: argparse.Namespace, quick: bool) -> dict[str, float]:
    prefix = Path(args.freeswitch)
    prefix = prefix if prefix.is_absolute() else ROOT / prefix
    if not (prefix / "bin" / "freeswitch").is_file():
        raise SystemExit(f"bench acd: --freeswitch {args.freeswitch}: no bin/freeswitch there "
                         f"(build it: deploy/freeswitch/build-from-source.sh)")
    if shutil.which("sipp") is None:
        raise SystemExit("bench acd: SIPp is not installed (Debian package sip-tester)")
    lock = switch_lock()
    folder = Path(tempfile.mkdtemp(prefix="tongdai-bench-acd-fs-"))
    load_start = round(load1(), 2)
    try:
        with bench_stack(args.stack, folder, lambda m: print(m, file=sys.stderr)) \
                as (stack, _health):
            figures = _run(args, prefix, stack, folder)
    finally:
        if lock is not None:
            os.close(lock)
    return {"load1_start_cores": load_start, **figures, "load1_end_cores": round(load1(), 2)}


def _run(args: argparse.Namespace, prefix: Path, stack, folder: Path) -> dict[str, float]:
    rates = [float(r) for r in args.rates.split(",")]
    bootstrap = stack.kafka_bootstrap
    hexid = uuid.uuid4().hex[:8]
    tenant, domain = f"bench{hexid}", f"bench{hexid}.tongdai.test"
    did = f"0283{random.randrange(10**6, 10**7)}"
    t_exts = [str(2000 + i) for i in range(args.agents)]
    c_exts = [str(5000 + i) for i in range(args.agents)]
    sides = [Side("tongdai", did, free_port(), t_exts), Side("mod_callcenter", CC_NUMBER,
                                                              free_port(), c_exts)]
    api_port, token_secret = free_port(), secrets.token_hex(32)
    xml_curl_password = secrets.token_urlsafe(18)
    base = {"TONGDAI_KAFKA_BOOTSTRAP": bootstrap, **stack.clickhouse_environ(),
            "TONGDAI_API_TOKEN_SECRET": token_secret, "TONGDAI_DEFAULT_TENANT": tenant,
            "PYTHONUNBUFFERED": "1", "TONGDAI_LOG_LEVEL": "WARNING",
            "TONGDAI_SCHEDULING": "realtime" if args.priority in PRIORITY_OF else "normal",
            "TONGDAI_SCHEDULING_PRIORITY": str(PRIORITY_OF.get(args.priority, 1))}
    procs: dict[str, subprocess.Popen] = {}
    esl = None
    figures: dict[str, float] = {}
    print(f"bench acd --freeswitch: run folder {folder}; load1 {load1():.2f}", file=sys.stderr)
    try:
        procs["api"] = start("api", folder, {**base, "TONGDAI_API_PORT": str(api_port),
                                             "TONGDAI_API_XML_CURL_PASSWORD": xml_curl_password,
                                             "TONGDAI_LOG_LEVEL": "INFO"})
        wait_log(procs["api"], procs["api"].log_path, "Listening at", timeout=120)
        conf_src = overlay(folder, domain, c_exts, args.wrapup_s)
        esl_port, esl_password = free_port(), secrets.token_urlsafe(18)
        internal_port, external_port = free_port(), free_port()
        rtp_start, rtp_end = rtp_block(4000)
        fs = folder / "freeswitch"
        fs_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                  "TONGDAI_FS_CONF_SRC": str(conf_src),
                  "TONGDAI_FS_BINARY": str(prefix / "bin" / "freeswitch"),
                  "TONGDAI_FS_CONF_DIR": str(fs / "conf"), "TONGDAI_FS_LOG_DIR": str(fs / "log"),
                  "TONGDAI_FS_DB_DIR": str(fs / "db"), "TONGDAI_FS_RUN_DIR": str(fs / "run"),
                  "TONGDAI_FS_CONSOLE": "false", "TONGDAI_FS_ESL_PASSWORD": esl_password,
                  "TONGDAI_FS_ESL_PORT": str(esl_port),
                  "TONGDAI_FS_INTERNAL_PORT": str(internal_port),
                  "TONGDAI_FS_EXTERNAL_PORT": str(external_port),
                  "TONGDAI_FS_BRANCH_PORT": str(free_port()),
                  "TONGDAI_FS_RTP_START": str(rtp_start), "TONGDAI_FS_RTP_END": str(rtp_end),
                  "TONGDAI_FS_API_URL": f"http://127.0.0.1:{api_port}",
                  "TONGDAI_API_XML_CURL_PASSWORD": xml_curl_password}
        fs.mkdir()
        procs["freeswitch"] = subprocess.Popen(
            ["sh", str(FS_CONF / "bin" / "tongdai-freeswitch")], env=fs_env,
            stdin=subprocess.DEVNULL, stdout=open(fs / "stdout.log", "w"),
            stderr=subprocess.STDOUT)
        esl = _connect_switch(procs["freeswitch"], esl_port, esl_password, fs)
        procs["worker"] = start("worker", folder, {
            **base, "TONGDAI_APP_ID": f"bench-acd-fs-{hexid}",
            "TONGDAI_WORKER_DATA_DIR": str(folder / "worker"), "TONGDAI_START_FROM": "latest",
            "TONGDAI_CONFIG_FROM": "latest", "TONGDAI_LOG_LEVEL": "INFO"})
        wait_log(procs["worker"], procs["worker"].log_path, "Ready", timeout=180)
        procs["bridge"] = start("bridge", folder, {
            **base, "TONGDAI_FREESWITCH": f"127.0.0.1:{esl_port}:{esl_password}",
            "TONGDAI_BRIDGE_NAME": f"bench-{hexid}", "TONGDAI_SPOOL_DIR": str(folder / "spool"),
            "TONGDAI_ACTUATOR_STATE_DIR": str(folder / "actuator"),
            "TONGDAI_TENANT_DOMAINS": f"{domain}={tenant}", "TONGDAI_LOG_LEVEL": "INFO"})
        wait_log(procs["bridge"], procs["bridge"].log_path, "actuator ready", timeout=120)
        if args.priority in PRIORITY_OF:
            kafka_like_the_switch(folder, PRIORITY_OF[args.priority])
        voice = ""
        if args.caller_rtp:  # callers talk as phones do: RTP (a tone) from the answer on
            pcap = tone_pcap(folder / "voice.pcap", args.patience_s + 10)
            voice = f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'
        passwords = _apply_tenant(base, folder, tenant, domain, did, t_exts, c_exts, args)
        for side in sides:
            scenario = folder / f"agent_{side.name}.xml"
            scenario.write_text(AGENT.replace("@SDP@", SDP)
                                .replace("@RING_MS@", str(args.ring_ms))
                                .replace("@TALK_MS@", str(args.talk_ms)))
            # -aa: the switch's NOTIFYs (message waiting, at registration) get a 200 OK
            side.uas = _sipp(["-sf", str(scenario), "-p", str(side.uas_port), "-mi", "127.0.0.1",
                              "-mp", str(free_port()), "-aa"], folder, f"uas_{side.name}")
        # The API learns the tenant from the config topic a moment after `config apply`
        # returns; until then the switch refuses the phones (403).
        register_until(internal_port, domain, t_exts[0], passwords[t_exts[0]],
                       sides[0].uas_port, timeout=60)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda pair: register_until(internal_port, domain, pair[0],
                                                      passwords[pair[0]], pair[1], timeout=30),
                          [(ext, side.uas_port) for side in sides for ext in side.exts]))
        _login_agents(bootstrap, tenant, t_exts)
        print(f"bench acd --freeswitch: {len(t_exts)} + {len(c_exts)} agents registered, the "
              f"product's logged in and available", file=sys.stderr)
        caller_scenario = folder / "caller.xml"
        caller_scenario.write_text(CALLER.replace("@SDP@", SDP).replace(
            "@PATIENCE_MS@", str(int(args.patience_s * 1000))).replace("@VOICE@", voice))
        esl.command(f"event plain {EVENTS}")
        # --busy N: other work on the machine, the same for both sides: N normal-priority
        # processes that keep a core busy each
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                   for _ in range(args.busy)]
        procs.update({f"busy{i}": b for i, b in enumerate(burners)})
        if burners:
            print(f"bench acd --freeswitch: {len(burners)} busy process(es) running",
                  file=sys.stderr)
        def calls_of(side: Side, cps: float, calls: int, key: str) -> None:
            caller = _sipp([f"127.0.0.1:{external_port}", "-sf", str(caller_scenario),
                            "-s", side.number, "-p", str(free_port()), "-r", f"{cps:g}",
                            "-m", str(calls), "-l", str(calls), "-mi", "127.0.0.1",
                            "-mp", str(free_port()),
                            "-timeout", f"{int(calls / cps + args.patience_s + 60)}s"],
                           folder, f"callers_{key}")
            try:
                caller.wait(timeout=calls / cps + args.patience_s + 90)
            except subprocess.TimeoutExpired:
                stop(caller)

        if args.warmup_s > 0:  # unmeasured: both sides, the first rate
            for side in sides:
                calls_of(side, rates[0], max(1, int(rates[0] * args.warmup_s)),
                         f"warmup_{side.name}")
                wait_idle(esl, 30)
                time.sleep(args.wrapup_s + 1.0)
            esl.take()
            print(f"bench acd --freeswitch: warmed up ({args.warmup_s:g} s of calls at "
                  f"{rates[0]:g}/s on each side, not measured)", file=sys.stderr)
        figures["warmup_s"] = args.warmup_s
        for cps in rates:
            calls = max(1, int(cps * args.seconds))
            tag = f"cps{cps:g}"
            for side in sides:
                key = f"{tag}_{side.name}"
                marks = _end_offsets(bootstrap) if side.name == "tongdai" else {}
                load_at = load1()
                esl.take()
                cpu_at, wall_at = cpu_groups(procs, folder), time.monotonic()
                calls_of(side, cps, calls, key)
                left = wait_idle(esl, 30)
                end_at = time.time()
                wall = time.monotonic() - wall_at
                used, waits = {}, {}
                for name, (spent, waited, ran) in cpu_groups(procs, folder).items():
                    before = cpu_at.get(name, (0.0, 0.0, 0))
                    used[name] = (spent - before[0]) / wall
                    slices = ran - before[2]
                    waits[name] = (waited - before[1]) / slices / 1e6 if slices > 0 else 0.0
                figures.update({f"{key}_cpu_{name}_cores": round(v, 2)
                                for name, v in used.items()})
                figures.update({f"{key}_{name}_run_queue_wait_per_slice_ms": round(v, 2)
                                for name, v in waits.items()})
                print(f"  {key}: CPU (cores) " + ", ".join(
                    f"{name} {v:.2f}" for name, v in used.items()) + "; run-queue wait "
                    "per time slice (ms) " + ", ".join(
                    f"{name} {v:.2f}" for name, v in waits.items()), file=sys.stderr)
                time.sleep(args.wrapup_s + 1.0)  # agents free again before the next phase
                events = [parse(r) for r in esl.take()]
                keys, tasks = leftovers_settled(esl)
                figures[f"{key}_switch_fence_keys_left_count"] = keys
                figures[f"{key}_switch_call_tasks_left_count"] = tasks
                callers, legs = analyse(events, side.name, tenant)
                figures.update(figures_of(callers, legs, key, end_at))
                figures[f"{key}_calls_count"] = calls
                figures[f"{key}_channels_left_count"] = max(left, 0)
                figures[f"{key}_load1_cores"] = round((load_at + load1()) / 2, 2)
                if side.name == "tongdai":
                    figures.update(stages(bootstrap, marks, tenant, callers, legs, key,
                                          Path(procs["bridge"].log_path)))
                _report(figures, key, cps)
            for metric in ("offer_p50", "offer_p90", "offer_p99", "connect_p50", "connect_p99"):
                ours = figures[f"{tag}_tongdai_{metric}_ms"]
                theirs = figures[f"{tag}_mod_callcenter_{metric}_ms"]
                figures[f"{tag}_{metric}_ratio"] = round(ours / theirs, 2) if theirs else 0.0
            print(f"  {tag}: tongdai / mod_callcenter: offer p50 {figures[f'{tag}_offer_p50_ratio']}"
                  f", p99 {figures[f'{tag}_offer_p99_ratio']}; connect p50 "
                  f"{figures[f'{tag}_connect_p50_ratio']}, p99 "
                  f"{figures[f'{tag}_connect_p99_ratio']}", file=sys.stderr)
        for b in burners:
            b.kill()
            b.wait()
        figures["busy_processes_count"] = args.busy
        figures["agents_per_side_count"] = args.agents
        figures["ring_ms"] = args.ring_ms
        figures["talk_ms"] = args.talk_ms
    finally:
        for side in sides:
            stop(side.uas, 10)
        if esl is not None:
            esl.close()
        for name in ("bridge", "worker", "freeswitch", "api",
                     *(n for n in procs if n.startswith("busy"))):
            stop(procs.get(name))
    return figures


def _report(figures: dict, key: str, cps: float) -> None:
    f = {k[len(key) + 1:]: v for k, v in figures.items() if k.startswith(key + "_")}
    print(f"  {key} at {cps:g}/s: {f['queued_count']} queued, {f['bridged_count']} bridged; "
          f"offer p50/p90/p99 {f['offer_p50_ms']}/{f['offer_p90_ms']}/{f['offer_p99_ms']} ms; "
          f"answer->bridged p50/p99 {f['connect_p50_ms']}/{f['connect_p99_ms']} ms; "
          f"lost bridges {f['lost_bridges_count']}, orphaned legs {f['orphaned_legs_count']}; "
          f"left on the switch: {f['switch_fence_keys_left_count']} fence keys, "
          f"{f['switch_call_tasks_left_count']} call tasks; "
          f"load1 {f['load1_cores']}", file=sys.stderr)


def _connect_switch(proc: subprocess.Popen, port: int, password: str,
                    fs: Path) -> EventSocket:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"FreeSWITCH exited {proc.returncode}: "
                               f"{(fs / 'stdout.log').read_text()[-2000:]}")
        try:
            esl = EventSocket(port, password)
        except OSError:
            time.sleep(0.3)
            continue
        if esl.api("sofia status").count("RUNNING") >= 3 and \
                "tongdai_bench" in esl.api("callcenter_config queue list"):
            return esl
        esl.close()
        time.sleep(0.5)
    raise RuntimeError("FreeSWITCH did not start its SIP profiles and mod_callcenter in 90 s")


def _apply_tenant(base: dict, folder: Path, tenant: str, domain: str, did: str,
                  t_exts: list[str], c_exts: list[str], args) -> dict[str, str]:
    """The bench tenant through `tongdai config apply`: the SIP passwords it printed."""
    lines = [f"tenant: {tenant}",
             f"settings: {{domain: {domain}, max_concurrent_calls: 0, recording: {{calls: none}}}}",
             "queues:",
             f"  bench: {{strategy: longest-idle-agent, offer_timeout_s: 20, "
             f"wrapup_s: {args.wrapup_s}, connect: switch}}",
             "dids:", f'  "{did}": {{queue: bench}}', "extensions:"]
    lines += [f'  "{ext}": {{display_name: "Agent {ext}", agent_id: a{ext}}}' for ext in t_exts]
    lines += [f'  "{ext}": {{display_name: "mod_callcenter {ext}"}}' for ext in c_exts]
    lines += ["agents:"]
    lines += [f'  a{ext}: {{extension: "{ext}", queues: {{bench: {{}}}}}}' for ext in t_exts]
    path = folder / "tenant.yaml"
    path.write_text("\n".join(lines) + "\n")
    out = tongdai(base, "config", "apply", str(path))
    passwords = dict(re.findall(r"^extension\s+(\S+)\s+\S+\s+sip_password=(\S+)", out, re.M))
    missing = set(t_exts + c_exts) - set(passwords)
    if missing:
        raise RuntimeError(f"config apply printed no SIP password for {sorted(missing)[:5]}")
    return passwords


def _login_agents(bootstrap: str, tenant: str, exts: list[str], timeout: float = 120) -> None:
    """Log the product's agents in and wait (bounded) until the router has them available."""
    import orjson
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from routing.contract import Envelope, deterministic_id, encode, topics

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(topics.CC_EVENTS, p)
           for p in consumer.partitions_for_topic(topics.CC_EVENTS) or ()]
    consumer.assign(tps)
    consumer.seek_to_end()
    for tp in tps:
        consumer.position(tp)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for ext in exts:
        now = time.time_ns() // 1000
        env = Envelope(deterministic_id("agent_login_requested", tenant, now, uuid.uuid4()),
                       "agent_login_requested", 1, now, tenant, "bench", None, None,
                       {"agent_id": f"a{ext}"})
        producer.send(topics.CC_COMMANDS, key=topics.tenant_key(tenant), value=encode(env))
    producer.flush()
    producer.close()
    want, seen = {f"a{ext}" for ext in exts}, set()
    deadline = time.monotonic() + timeout
    try:
        while not want <= seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(want - seen)} agents never available, e.g. "
                                   f"{sorted(want - seen)[:5]}")
            for _tp, batch in consumer.poll(timeout_ms=500).items():
                for r in batch:
                    if tenant.encode() not in r.value:
                        continue
                    env = orjson.loads(r.value)
                    if env["tenant"] == tenant and env["type"] == "agent_state_changed" \
                            and env["payload"].get("state") == "available":
                        seen.add(env["payload"]["agent_id"])
    finally:
        consumer.close()


def _end_offsets(bootstrap: str) -> dict:
    from routing.contract import topics

    from ._common import end_offsets

    return end_offsets(bootstrap, [topics.CC_EVENTS, topics.ROUTING_DECISIONS,
                                   topics.FS_ROUTING])
