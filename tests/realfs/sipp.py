"""SIPp phones for the realfs tests: an agent (a REGISTER with digest auth, then a UAS that
rings and answers) and a caller (a UAC through the carriers' profile, RFC 2833 DTMF from the
pcaps Debian's sip-tester ships). Scenarios are written per run; SIPp's exit code and its
message log are the SIP-level truth.
"""
from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.benchmarks._common import tone_pcap  # noqa: F401  (shared with the ACD bench)

PCAPS = Path("/usr/share/sip-tester")
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

REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
  <send retrans="500"><![CDATA[
REGISTER sip:[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[domain]>;tag=[pid]reg[call_number]
To: <sip:[service]@[domain]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[service]@[local_ip]:[uas_port]>
Max-Forwards: 70
Expires: 3600
User-Agent: sipp-agent
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[domain]>;tag=[pid]reg[call_number]
To: <sip:[service]@[domain]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[service]@[local_ip]:[uas_port]>
[authentication]
Max-Forwards: 70
Expires: 3600
User-Agent: sipp-agent
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""

# Rings for @RING_MS@ ms, answers, then waits for the BYE (a re-INVITE on the way is answered).
AGENT = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="agent">
  <recv request="INVITE" crlf="true"/>
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
  <pause milliseconds="@RING_MS@"/>
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
  <label id="wait"/>
  <recv request="INVITE" optional="true" next="reinvite"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <pause milliseconds="500"/>
  <nop next="end"/>
  <label id="reinvite"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

@SDP@]]></send>
  <recv request="ACK" next="wait"/>
  <label id="end"/>
</scenario>
"""

CALLER_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[caller]@[local_ip]:[local_port]>
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
From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
"""
CALLER_DTMF = """  <pause milliseconds="{pause}"/>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
"""
CALLER_TAIL = """  <pause milliseconds="{hold}"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def pcap(digit: str) -> Path:
    name = {"*": "star", "#": "pound"}.get(digit, digit)
    return PCAPS / f"dtmf_2833_{name}.pcap"


def dtmf_pcaps(workdir: Path, digits: str, prefix: str = "dtmf") -> list[Path]:
    """One pcap per key pressed, as copies of the packaged ones whose RTP sequence numbers
    and timestamps keep growing from key to key: the packaged files have fixed ones (the
    "1" file's are older than the "2" file's), and FreeSWITCH drops an RFC 2833 event
    whose packets look older than the last (a caller's "2" then "1" gave only the 2)."""
    out = []
    seq, stamp = 1000, 160000
    for i, digit in enumerate(digits):
        data = bytearray(pcap(digit).read_bytes())
        assert struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4, "little-endian pcap expected"
        off, first = 24, None
        while off < len(data):
            incl = struct.unpack("<I", data[off + 8:off + 12])[0]
            pkt = off + 16
            ip = pkt + 14  # Ethernet
            udp = ip + (data[ip] & 0x0F) * 4
            rtp = udp + 8
            old_seq, old_ts = struct.unpack(">HI", data[rtp + 2:rtp + 8])
            first = first if first is not None else (old_seq, old_ts)
            struct.pack_into(">HI", data, rtp + 2, (seq + old_seq - first[0]) & 0xFFFF,
                             (stamp + old_ts - first[1]) & 0xFFFFFFFF)
            struct.pack_into(">H", data, udp + 6, 0)  # no UDP checksum (IPv4 allows it)
            off = pkt + incl
        seq, stamp = seq + 100, stamp + 16000
        path = workdir / f"{prefix}_{i}_{pcap(digit).stem}.pcap"
        path.write_bytes(bytes(data))
        out.append(path)
    return out




# An answering phone's own requests in its dialog (it is the UAS of the call): the switch's
# From (with its tag) becomes the To, the INVITE's To with the phone's tag the From, and the
# switch's Contact the request URI. SIPp's ereg keeps a header's value with its leading blank.
DIALOG_CAPTURE = """  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="[^ ].*" search_in="hdr" header="From:" check_it="true" assign_to="peer"/>
      <ereg regexp="[^ ].*" search_in="hdr" header="To:" check_it="true" assign_to="me"/>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" check_it="true"
            assign_to="target"/>
    </action>
  </recv>
"""
DIALOG_REQUEST = """  <send retrans="500"><![CDATA[
{method} [$target] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: [$me];tag=[pid]agent[call_number]
To: [$peer]
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:[local_ip]:[local_port]>
Max-Forwards: 70
{headers}Content-Length: [len]

{body}]]></send>
"""
DIALOG_ACK = """  <send><![CDATA[
ACK [$target] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: [$me];tag=[pid]agent[call_number]
To: [$peer]
Call-ID: [call_id]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
"""
OK_TO_REQUEST = """  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""


def _reinvite(cseq: int, direction: str) -> str:
    sdp = SDP.replace("a=fmtp:101 0-15\n", f"a=fmtp:101 0-15\na={direction}\n")
    return (DIALOG_REQUEST.format(method="INVITE", cseq=cseq, body=sdp,
                                  headers="Content-Type: application/sdp\n")
            + '  <recv response="100" optional="true"/>\n  <recv response="200"/>\n'
            + DIALOG_ACK.format(cseq=cseq))


def hold_then_resume(after_ms: int, hold_ms: int) -> str:
    """`after_ms` after its answer the phone puts the other party on hold (re-INVITE,
    a=sendonly, as a phone's hold key does), and takes it back `hold_ms` later."""
    return (f'  <pause milliseconds="{after_ms}"/>\n' + _reinvite(10, "sendonly")
            + f'  <pause milliseconds="{hold_ms}"/>\n' + _reinvite(11, "sendrecv"))


def refer(after_ms: int, to_uri: str, by_uri: str) -> str:
    """`after_ms` after its answer the phone transfers the other party to `to_uri` (a
    blind transfer: REFER, as a phone's transfer key does), then takes the switch's
    NOTIFY and its BYE in either order."""
    return (f'  <pause milliseconds="{after_ms}"/>\n'
            + DIALOG_REQUEST.format(method="REFER", cseq=10, body="",
                                    headers=f"Refer-To: <{to_uri}>\nReferred-By: <{by_uri}>\n")
            + '  <recv response="202"/>\n'
            + '  <label id="refer_wait"/>\n'
            + '  <recv request="NOTIFY" optional="true" next="refer_notify"/>\n'
            + '  <recv request="BYE" next="refer_bye"/>\n'
            + '  <label id="refer_notify"/>\n' + OK_TO_REQUEST
            + '  <nop next="refer_wait"/>\n'
            + '  <label id="refer_bye"/>\n' + OK_TO_REQUEST
            + '  <pause milliseconds="500"/>\n  <nop next="end"/>\n')


def hang_up(after_ms: int) -> str:
    """`after_ms` after its answer the phone hangs up (BYE)."""
    return (f'  <pause milliseconds="{after_ms}"/>\n'
            + DIALOG_REQUEST.format(method="BYE", cseq=10, body="", headers="")
            + '  <recv response="200"/>\n  <nop next="end"/>\n')


def agent_scenario(ring_ms: int = 1000, then: str = "") -> str:
    """An agent's phone: rings for `ring_ms` (SIPp's pause takes no keyword), answers;
    `then` (hold_then_resume, refer) runs after the answer, in the call's dialog."""
    text = AGENT
    if then:
        text = text.replace('  <recv request="INVITE" crlf="true"/>\n', DIALOG_CAPTURE, 1)
        text = text.replace('  <recv request="ACK" crlf="true"/>\n',
                            '  <recv request="ACK" crlf="true"/>\n' + then, 1)
    return text.replace("@SDP@", SDP).replace("@RING_MS@", str(ring_ms))


def media_at(scenario: str, port: int) -> str:
    """`scenario` with its SDP offering `port` for audio: the switch sends the call's RTP
    there (an RtpCounter's port) instead of to SIPp's own media socket."""
    return scenario.replace("m=audio [media_port] ", f"m=audio {port} ")


class RtpCounter:
    """Counts the RTP packets the switch sends to 127.0.0.1:`port`, with their arrival
    times (time.time()) and whether each carries sound (G.711 u-law: silence is 0xFF or
    0x7F, near it a few codes off)."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.port = port
        self.packets: list[tuple[float, bool]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import time

        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except OSError:
                continue
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            payload = data[12 + 4 * (data[0] & 0x0F):]
            loud = sum(1 for b in payload if (b & 0x7F) < 0x70) > len(payload) // 4
            self.packets.append((time.time(), loud))

    def between(self, start: float, end: float, loud: bool = False) -> int:
        """Packets (with sound, if `loud`) that arrived in [start, end)."""
        return sum(1 for at, is_loud in list(self.packets)
                   if start <= at < end and (is_loud or not loud))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def caller_scenario(pcaps: list[Path], first_after_ms: int = 2500, between_ms: int = 1500,
                    hold_ms: int = 8000) -> str:
    """A caller: INVITE, then each key's pcap as RFC 2833 (the first `first_after_ms` after
    the 200 OK), then hangs up `hold_ms` after the last one."""
    body = CALLER_HEAD
    for i, path in enumerate(pcaps):
        body += CALLER_DTMF.format(pause=first_after_ms if i == 0 else between_ms, pcap=path)
    return (body + CALLER_TAIL.format(hold=hold_ms)).replace("@SDP@", SDP)


@dataclass
class Sipp:
    """One SIPp process; `wait()` gives its exit code (0: every call succeeded)."""

    name: str
    proc: subprocess.Popen
    log: Path

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return -9

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def messages(self) -> str:
        """SIPp's message trace (-trace_msg), for assertions and failure reports."""
        found = sorted(self.log.parent.glob(f"{self.name}_*_messages.log"))
        return found[-1].read_text(errors="replace") if found else ""


def run(workdir: Path, name: str, scenario: str, remote: str | None, port: int,
        args: list[str], *, timeout_s: int = 60, secret: str = "") -> Sipp:
    """Start SIPp with `scenario` (text) as `name` in `workdir`, bound to 127.0.0.1:`port`.
    A `secret` (the agent's SIP password) is passed as -ap and never written to the logs."""
    workdir.mkdir(parents=True, exist_ok=True)
    sf = workdir / f"{name}.xml"
    sf.write_text(scenario)
    argv = ["sipp", *([remote] if remote else []), "-sf", str(sf), "-i", "127.0.0.1",
            "-p", str(port), "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
            "-trace_msg", "-trace_err", *args]
    if secret:
        argv += ["-ap", secret]
    log = workdir / f"{name}.out"
    proc = subprocess.Popen(argv, cwd=workdir, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    return Sipp(name, proc, workdir / f"{name}.xml")


# A registered phone calling out through the internal profile: every INVITE is challenged
# (407, digest auth with -au/-ap), then the call is held for @HOLD_MS@ ms and hung up. The
# ACK of the 407 belongs to the first INVITE's transaction ([branch-3]: the INVITE's branch,
# three messages back): with a branch of its own the switch retransmits the 407, and the
# BYE then carries that response's To tag (481).
PHONE_CALL = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="phone_call">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:[user]@[domain]>;tag=[pid]phone[call_number]
To: <sip:[service]@[domain]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[user]@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: sipp-phone
Content-Type: application/sdp
Content-Length: [len]

@SDP@]]></send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <send><![CDATA[
ACK sip:[service]@[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch-3]
From: <sip:[user]@[domain]>;tag=[pid]phone[call_number]
To: <sip:[service]@[domain]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:[user]@[domain]>;tag=[pid]phone[call_number]
To: <sip:[service]@[domain]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:[user]@[local_ip]:[local_port]>
[authentication]
Max-Forwards: 70
User-Agent: sipp-phone
Content-Type: application/sdp
Content-Length: [len]

@SDP@]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:[user]@[domain]>;tag=[pid]phone[call_number]
To: <sip:[service]@[domain]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
Contact: <sip:[user]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="@HOLD_MS@"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:[user]@[domain]>;tag=[pid]phone[call_number]
To: <sip:[service]@[domain]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 3 BYE
Contact: <sip:[user]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def phone_call_scenario(hold_ms: int = 5000) -> str:
    return PHONE_CALL.replace("@SDP@", SDP).replace("@HOLD_MS@", str(hold_ms))
