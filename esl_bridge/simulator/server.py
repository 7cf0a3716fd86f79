"""The inbound Event Socket server: one reader and one writer thread per client connection."""

from __future__ import annotations

import logging
import queue
import re
import socket
import threading
from typing import Any

from esl_bridge.protocol import (
    Event,
    encode_api_response,
    encode_auth_request,
    encode_disconnect_notice,
    encode_event,
    encode_reply,
)

from .node import Node

log = logging.getLogger(__name__)

FORMATS = ("plain", "json", "xml")
#: Event type names look like CHANNEL_CREATE, HEARTBEAT, ALL, CUSTOM (not sofia::register).
EVENT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
LOG_LEVELS = {"console": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4,
              "notice": 5, "info": 6, "debug": 7}
_STOP = object()


class Session:
    """One ESL client: authentication, subscriptions, filters, commands."""

    def __init__(self, server: EslServer, sock: socket.socket, address: Any) -> None:
        self.server = server
        self.node: Node = server.node
        self.sock = sock
        self.address = address
        self.authed = False
        self.format = "plain"
        self.all_events = False
        self.names: set[str] = set()
        self.subclasses: set[str] = set()
        self.nixed: set[str] = set()  # names nixed while subscribed to ALL
        self.listening = False
        self.logging = False
        self.filters: list[tuple[str, str]] = []
        self.closed = False
        self._out: queue.Queue[object] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, name=f"esl-sim-read-{address}",
                                        daemon=True)
        self._writer = threading.Thread(target=self._write_loop,
                                        name=f"esl-sim-write-{address}", daemon=True)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the writer to flush and close the socket."""
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join(timeout)

    def start(self) -> None:
        self._writer.start()
        self.send(encode_auth_request())
        self._reader.start()

    # ------------------------------------------------------------------ output

    def send(self, data: bytes) -> None:
        if not self.closed:
            self._out.put(data)

    def close(self, *, notice: bool = False) -> None:
        """Stop after flushing what is queued (plus a disconnect notice if asked)."""
        if self.closed:
            return
        if notice:
            self._out.put(encode_disconnect_notice())
        self.closed = True
        self._out.put(_STOP)

    def _write_loop(self) -> None:
        try:
            stop = False
            while not stop:
                batch = [self._out.get()]
                # Drain what is queued into one send: far fewer syscalls under load.
                while len(batch) < 256:
                    try:
                        batch.append(self._out.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in batch:
                    batch = batch[:batch.index(_STOP)]
                    stop = True
                data = b"".join(b for b in batch if isinstance(b, bytes))
                if data:
                    self.sock.sendall(data)
        except OSError:
            pass
        finally:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.server.forget(self)

    def wants(self, event: Event) -> bool:
        if not self.authed or self.closed:
            return False
        name = event.event_name
        if self.all_events:
            ok = name not in self.nixed
        elif name in self.names:
            ok = name != "CUSTOM" or event.subclass is None or event.subclass in self.subclasses
        else:
            ok = False
        if ok and self.filters:
            ok = any(event.headers.get(h) == v for h, v in self.filters)
        return ok

    # ------------------------------------------------------------------ input

    def _read_loop(self) -> None:
        buf = b""
        try:
            while not self.closed:
                try:
                    chunk = self.sock.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk.replace(b"\r\n", b"\n")
                while not self.closed:
                    # mod_event_socket's read_packet drops a CR or LF that starts a packet
                    # (the bridge's wake newlines come between commands)
                    buf = buf.lstrip(b"\r\n")
                    end = buf.find(b"\n\n")
                    if end < 0:
                        break
                    block, buf = buf[:end], buf[end + 2:]
                    lines = block.split(b"\n")
                    command = lines[0].decode("utf-8", "replace").strip()
                    headers: list[tuple[str, str]] = []
                    for line in lines[1:]:
                        k, _, v = line.decode("utf-8", "replace").partition(":")
                        headers.append((k.strip(), v.strip()))
                    body: str | None = None
                    length = dict(headers).get("Content-Length")
                    if length is not None:  # sendevent / sendmsg bodies
                        n = int(length) if length.isdigit() else 0
                        while len(buf) < n:
                            more = self.sock.recv(65536)
                            if not more:
                                return
                            buf += more
                        body, buf = buf[:n].decode("utf-8", "replace"), buf[n:]
                    if command:
                        self.handle(command, dict(headers), headers, body)
        finally:
            # FreeSWITCH says goodbye whenever a listener ends (EOF, exit, auth failure).
            self.close(notice=True)

    def handle(self, command: str, headers: dict[str, str],
               pairs: list[tuple[str, str]] | None = None, body: str | None = None) -> None:
        word, _, rest = command.partition(" ")
        word = word.lower()
        rest = rest.strip()
        if not self.authed and word != "exit":
            if word == "auth":
                if rest == self.server.password:
                    self.authed = True
                    self.send(encode_reply("+OK accepted"))
                else:
                    self.send(encode_reply("-ERR invalid"))
                    self.close(notice=True)
            else:
                self.send(encode_reply("-ERR command not found"))
            return
        if word == "exit":
            self.send(encode_reply("+OK bye"))
            self.close(notice=True)
        elif word == "event":
            self._subscribe(rest.split())
        elif word == "nixevent":
            self._nix(rest.split())
        elif word == "noevents":
            with self.node.lock:
                was_listening = self.listening
                self.listening = self.all_events = False
                self.names.clear()
                self.subclasses.clear()
                self.nixed.clear()
            self.send(encode_reply("+OK no longer listening for events" if was_listening
                                   else "-ERR not listening for events"))
        elif word == "filter":
            self._filter(rest.split(None, 2))
        elif word == "api":
            self._api(rest)
        elif word == "bgapi":
            self._bgapi(rest, headers.get("Job-UUID"))
        elif word == "log":
            level = LOG_LEVELS.get(rest.lower(), int(rest) if rest.isdigit() else None) \
                if rest else 7
            if level is None or not 0 <= level <= 7:
                self.send(encode_reply("-ERR invalid log level"))
            else:
                self.logging = True
                self.send(encode_reply(f"+OK log level {rest} [{level}]"))
        elif word == "nolog":
            was_logging, self.logging = self.logging, False
            self.send(encode_reply("+OK no longer logging" if was_logging else "-ERR not loging"))
        elif word in ("linger", "nolinger"):
            self.send(encode_reply("-ERR not controlling a session"))  # inbound socket
        elif word == "sendevent":
            self._sendevent(rest, pairs or [], body)
        elif word == "divert_events":
            self.send(encode_reply("-ERR not controlling a session."))
        else:
            self.send(encode_reply("-ERR command not found"))

    def _subscribe(self, words: list[str]) -> None:
        with self.node.lock:  # no event may slip out half-subscribed
            if words and words[0].lower() in FORMATS:
                self.format = words.pop(0).lower()
            custom = False
            keys = 0
            for word in words:
                if custom:
                    self.subclasses.add(word)
                    continue
                name = word.upper()
                if not EVENT_NAME.match(name):
                    continue  # FreeSWITCH skips names it does not know
                keys += 1
                if name == "ALL":
                    self.all_events = True
                    self.nixed.clear()
                elif name == "CUSTOM":
                    custom = True
                    self.names.add("CUSTOM")
                else:
                    self.names.add(name)
                    self.nixed.discard(name)
            if keys:
                self.listening = True
        if not keys:
            self.send(encode_reply("-ERR no keywords supplied"))
            return
        self.send(encode_reply(f"+OK event listener enabled {self.format}"))

    def _nix(self, words: list[str]) -> None:
        with self.node.lock:
            custom = False
            keys = 0
            for word in words:
                if custom:
                    self.subclasses.discard(word)
                    continue
                name = word.upper()
                if not EVENT_NAME.match(name):
                    continue
                keys += 1
                if name == "ALL":
                    self.all_events = False
                    self.names.clear()
                    self.nixed.clear()
                elif name == "CUSTOM":
                    custom = True
                else:
                    self.names.discard(name)
                    if self.all_events:
                        self.nixed.add(name)
            if keys:
                self.listening = True
        self.send(encode_reply("+OK events nixed" if keys else "-ERR no keywords supplied"))

    def _filter(self, words: list[str]) -> None:
        with self.node.lock:
            if words and words[0] == "delete":
                if len(words) > 1 and words[1] == "all":
                    self.filters.clear()
                    self.send(encode_reply("+OK filter deleted. [all][]"))
                    return
                header, _, value = (words[1] if len(words) > 1 else "").partition(" ")
                if len(words) > 2:
                    header, value = words[1], words[2]
                self.filters = [(h, v) for h, v in self.filters
                                if not (h == header and (not value or v == value))]
                self.send(encode_reply(f"+OK filter deleted. [{header}][{value}]"))
                return
            if len(words) < 2:
                self.send(encode_reply("-ERR invalid syntax"))
                return
            header, value = words[0], " ".join(words[1:])
            self.filters.append((header, value))
        self.send(encode_reply(f"+OK filter added. [{header}]=[{value}]"))

    def _sendevent(self, name: str, pairs: list[tuple[str, str]], body: str | None) -> None:
        """Fire a client-made event on the node (e.g. a CUSTOM event a dialplan would fire)."""
        node = self.node
        with node.lock:
            event_uuid = node.new_uuid()
            given = [(k, v) for k, v in pairs if k != "Content-Length"]
            subclass = dict(given).get("Event-Subclass")
            core = node.core_pairs(name.upper() or "CUSTOM", "CUSTOM" if subclass else None,
                                   subclass=subclass)
            names = {k for k, _ in core}
            extra = [(k, v) for k, v in given if k not in names]
            node.emit(core + [("Event-UUID", event_uuid)] + extra, body)
        self.send(encode_reply(f"+OK {event_uuid}"))

    def _api(self, text: str) -> None:
        command, _, arg = text.partition(" ")
        result: list[str] = []
        finished = threading.Event()

        def done(body: str) -> None:
            result.append(body)
            finished.set()

        self.node.execute(command, arg.strip(), done)
        # Blocking like FreeSWITCH: `api originate` holds the socket until the call is up.
        while not finished.wait(0.5):
            if self.closed or not self.server.running:
                return
        # mod_event_socket answers an api command that printed nothing "-ERR no reply".
        self.send(encode_api_response(result[0] or "-ERR no reply\n"))

    def _bgapi(self, text: str, job_uuid: str | None) -> None:
        command, _, arg = text.partition(" ")
        arg = arg.strip()
        with self.node.lock:
            job = job_uuid or self.node.new_uuid()
        self.send(encode_reply("", job_uuid=job))

        def done(body: str) -> None:
            node = self.node
            with node.lock:
                pairs = node.core_pairs("BACKGROUND_JOB")
                pairs += [("Job-UUID", job), ("Job-Command", command)]
                if arg:
                    pairs.append(("Job-Command-Arg", arg))
                node.emit(pairs, body)

        self.node.execute(command, arg, done)


class EslServer:
    """Accepts inbound ESL connections for a Node and fans its events out to them."""

    def __init__(self, node: Node, host: str = "127.0.0.1", port: int = 0,
                 password: str = "ClueCon") -> None:
        self.node = node
        self.host = host
        self.password = password
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()
        self.running = False
        node.listeners.append(self._broadcast)

    @property
    def port(self) -> int:
        if self._sock is None:
            return self._requested_port
        return int(self._sock.getsockname()[1])

    @property
    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions)

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(128)
        sock.settimeout(0.2)  # close() does not wake accept() on Linux: poll `running`
        self._sock = sock
        self.running = True
        self._thread = threading.Thread(target=self._accept_loop, name="esl-sim-accept",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.running = False
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        sessions = self.sessions
        for session in sessions:
            session.close(notice=True)  # flushed by the writer, which then closes the socket
        for session in sessions:
            session.join(timeout=1.0)
            try:
                session.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def forget(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while self.running:
            try:
                conn, address = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(self, conn, address)
            with self._lock:
                self._sessions.add(session)
            session.start()

    def _broadcast(self, event: Event) -> None:
        encoded: dict[str, bytes] = {}
        for session in self.sessions:
            if session.wants(event):
                fmt = session.format
                if fmt not in encoded:
                    encoded[fmt] = encode_event(fmt, event, event.body)
                session.send(encoded[fmt])
