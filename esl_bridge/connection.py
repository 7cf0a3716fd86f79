"""An inbound ESL client of our own (gevent), reading frames with tongdai's parser.

greenswitch's InboundESL was the base until its reader had to be replaced: it URL-decodes a
whole event before splitting it into lines (a value holding an encoded newline is mangled),
reads line by line, and swallows handler exceptions; replacing it meant reaching into its
private fields (the pending commands, the auth-request event, the run flag). What is left
is a few lines, owned here: connect, wait for ``auth/request``, ``auth``, send a command and
wait for its reply (replies come in the order commands were sent), and one reading greenlet
that feeds raw bytes to `protocol.FrameParser` and hands every event frame to one callback,
in wire order.

This module imports gevent: only the bridge process (`tongdai bridge`) may import it.
"""
from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import gevent
import gevent.event
import gevent.lock
import gevent.socket

from . import protocol
from .protocol import CommandReply, Frame, FrameParser, ProtocolError

log = logging.getLogger("tongdai.bridge.esl")

EVENT_TYPES = (protocol.EVENT_PLAIN, protocol.EVENT_JSON, protocol.EVENT_XML)
RUDE_REJECTION = "text/rude-rejection"
# The longest the reading greenlet keeps the hub while data keeps coming.
YIELD_EVERY_S = 0.005


class NotConnectedError(ConnectionError):
    """The socket is not (or no longer) connected: the command was not answered."""


class AuthenticationFailed(ValueError):
    """FreeSWITCH refused the ESL password."""


class Connection:
    """One inbound ESL socket to one FreeSWITCH node.

    ``on_event`` gets every event frame and ``on_protocol_error`` a framing error, in the
    reading greenlet; ``closed`` is set once the socket is done with (pending commands then
    fail with NotConnectedError)."""

    def __init__(self, host: str, port: int, password: str, *,
                 on_event: Callable[[Frame], None],
                 on_protocol_error: Callable[[ProtocolError], None],
                 timeout: float = 5, wake_ms: float = 0) -> None:
        self.host, self.port, self.password = host, port, password
        self.timeout = timeout
        self.wake_ms = wake_ms
        self.on_event = on_event
        self.on_protocol_error = on_protocol_error
        self.parser = FrameParser()
        self.closed = gevent.event.Event()
        self.connected = False
        self.bytes_received = 0
        self.sock: gevent.socket.socket | None = None
        self._run = False
        self._auth_request = gevent.event.Event()
        self._pending: list[gevent.event.AsyncResult] = []
        # Commands from several greenlets go out whole and in the order their replies are
        # awaited (a sendall that yields half-way must not let another command in).
        self._sending = gevent.lock.Semaphore()
        self._reader: gevent.Greenlet | None = None
        self._waker: gevent.Greenlet | None = None

    def connect(self) -> None:
        """Connect and authenticate. Raises NotConnectedError (no answer, or the socket
        closed before asking for the password) or AuthenticationFailed."""
        try:
            sock = gevent.socket.create_connection((self.host, self.port),
                                                   timeout=self.timeout)
        except OSError as exc:
            raise NotConnectedError(f"cannot connect to {self.host}:{self.port}: {exc}") \
                from None
        sock.settimeout(None)
        # No Nagle: a command must not wait for the ACK of what went before it (the wake
        # newline, a previous command): with Nagle, newlines every 2 ms held each bgapi
        # back by ~25 ms (send -> reply p50 30 ms against 4.6 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.connected, self._run = sock, True, True
        self._reader = gevent.spawn(self.receive_events)
        if not self._auth_request.wait(timeout=self.timeout):
            self.close()
            raise NotConnectedError(f"no auth/request within {self.timeout} s")
        if not self.connected:
            raise NotConnectedError("FreeSWITCH closed the connection, check its ACL")
        reply = self.send(f"auth {self.password}")
        if reply.text != "+OK accepted":
            raise AuthenticationFailed(f"FreeSWITCH refused the password: {reply.text}")
        if self.wake_ms > 0:
            self._waker = gevent.spawn(self._wake_loop)

    def _wake_loop(self) -> None:
        """A bare newline every ``wake_ms``, between commands (the switch drops a newline
        that starts a packet). mod_event_socket's listener, with nothing to send, sleeps
        in a 20 ms poll() of the socket, and an event put on its queue does not wake it:
        a CHANNEL_PARK reached the bridge 8 / 19 / 21 ms p50 / p90 / p99 after its
        Event-Date-Timestamp. A readable socket ends the sleep and the listener sends
        what is queued: with a newline every 2 ms, 2.0 / 4.0 / 10.5 ms (ACD bench, 10
        calls/s)."""
        while self._run and self.sock is not None:
            gevent.sleep(self.wake_ms / 1000)
            if self._sending.locked():
                continue  # a command is going out: it wakes the listener itself
            with self._sending:
                try:
                    self.sock.sendall(b"\n")
                except OSError:  # closed meanwhile
                    return

    def send(self, command: str, *, timeout: float | None = None) -> CommandReply:
        """Send one command and wait (in this greenlet) for its reply; with ``timeout``,
        no reply by then closes the connection (a late reply would answer the next
        command) and raises NotConnectedError. Greenlets may send at once: the switch
        answers a connection's commands in the order they came, and so are the replies
        handed out."""
        if not self.connected or self.sock is None:
            raise NotConnectedError("not connected")
        result: gevent.event.AsyncResult = gevent.event.AsyncResult()
        with self._sending:
            self._pending.append(result)
            try:
                self.sock.sendall(f"{command}\n\n".encode())
            except OSError as exc:
                self._pending.remove(result)
                raise NotConnectedError(f"cannot send: {exc}") from None
        try:
            reply: CommandReply = result.get(timeout=timeout)
        except gevent.Timeout:
            self.close()
            raise NotConnectedError(f"no reply within {timeout} s") from None
        return reply

    def api(self, command: str) -> CommandReply:
        """A blocking `api` command (in this greenlet); raises NotConnectedError."""
        return self.send(f"api {command}")

    def receive_events(self) -> None:
        assert self.sock is not None
        yielded = time.monotonic()
        try:
            while self._run:
                try:
                    data = self.sock.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    break
                self.bytes_received += len(data)
                try:
                    frames = self.parser.feed(data)
                except ProtocolError as exc:
                    for frame in exc.frames:
                        self._dispatch(frame)
                    self.on_protocol_error(exc)
                    break  # framing is lost: reconnect, the snapshot reconciles
                for frame in frames:
                    self._dispatch(frame)
                # A recv that finds data returns without yielding: behind a backlog this
                # loop would keep the hub, and the greenlets sending commands (and their
                # replies' waiters) would wait until the backlog is gone. It yields at
                # most every YIELD_EVERY_S, so a backlog is still read in large batches.
                now = time.monotonic()
                if now - yielded >= YIELD_EVERY_S:
                    gevent.sleep(0)
                    yielded = time.monotonic()
        finally:
            self._run = False
            self.connected = False
            self._auth_request.set()
            pending, self._pending = self._pending, []
            for result in pending:
                result.set_exception(NotConnectedError("FreeSWITCH closed the connection"))
            self.closed.set()

    def _dispatch(self, frame: Frame) -> None:
        ctype = frame.content_type
        if ctype in EVENT_TYPES:
            self.on_event(frame)
        elif ctype in (protocol.COMMAND_REPLY, protocol.API_RESPONSE):
            if self._pending:
                self._pending.pop(0).set(protocol.parse_reply(frame))
            else:
                log.warning("reply with no command waiting: %s", frame.get("Reply-Text"))
        elif ctype == protocol.AUTH_REQUEST:
            self._auth_request.set()
        elif ctype in (protocol.DISCONNECT_NOTICE, RUDE_REJECTION):
            if frame.get("Content-Disposition") != "linger":
                self.connected = False
                self._run = False
        # log/data and unknown content types: not ours to handle

    def stop(self) -> None:
        """Say ``exit``, wait (bounded) for FreeSWITCH to close, then close the socket."""
        if self.connected:
            try:
                self.send("exit", timeout=self.timeout)
            except NotConnectedError:
                pass
        self._run = False
        if self._reader is not None and self._reader is not gevent.getcurrent():
            self.closed.wait(timeout=self.timeout)
        self.close()

    def close(self) -> None:
        """Close the socket now; the reading greenlet ends and pending commands fail."""
        self._run = False
        if self._waker is not None and self._waker is not gevent.getcurrent():
            self._waker.kill(block=False)
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
