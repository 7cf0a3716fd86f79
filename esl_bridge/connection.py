"""greenswitch's inbound ESL connection, reading frames with tongdai's parser.

greenswitch gives the connection, `auth`, and the command/reply correlation of `send()`.
Its own reader is replaced: it URL-decodes a whole event before splitting it into lines
(a value holding an encoded newline is mangled), reads line by line, and swallows handler
exceptions. Ours reads raw bytes into `protocol.FrameParser` and hands every event frame
to one callback, in the reading greenlet, in wire order.

This module imports gevent: only the bridge process (`tongdai bridge`) may import it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
from greenswitch.esl import InboundESL, NotConnectedError

from . import protocol
from .protocol import Frame, FrameParser, ProtocolError

log = logging.getLogger("tongdai.bridge.esl")

EVENT_TYPES = (protocol.EVENT_PLAIN, protocol.EVENT_JSON, protocol.EVENT_XML)


class _Reply:
    """What greenswitch's `send()` returns: `.headers` and `.data` (Reply-Text or body)."""

    def __init__(self, reply: protocol.CommandReply) -> None:
        self.headers = reply.headers
        self.data = reply.text
        self.reply = reply


class Connection(InboundESL):
    """One inbound ESL socket to one FreeSWITCH node."""

    def __init__(self, host: str, port: int, password: str, *,
                 on_event: Callable[[Frame], None],
                 on_protocol_error: Callable[[ProtocolError], None],
                 timeout: float = 5) -> None:
        super().__init__(host, port, password, timeout)
        self.on_event = on_event
        self.on_protocol_error = on_protocol_error
        self.parser = FrameParser()
        self.closed = gevent.event.Event()
        self.bytes_received = 0

    def start_event_handlers(self) -> None:
        # Only the reader: events are handled in it, in order (no second queue).
        self._receive_events_greenlet = gevent.spawn(self.receive_events)

    def receive_events(self) -> None:
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
        finally:
            self._run = False
            self.connected = False
            self._auth_request_event.set()
            pending, self._commands_sent = self._commands_sent, []
            for result in pending:
                result.set_exception(NotConnectedError("FreeSWITCH closed the connection"))
            self.closed.set()

    def _dispatch(self, frame: Frame) -> None:
        ctype = frame.content_type
        if ctype in EVENT_TYPES:
            self.on_event(frame)
        elif ctype in (protocol.COMMAND_REPLY, protocol.API_RESPONSE):
            if self._commands_sent:
                self._commands_sent.pop(0).set(_Reply(protocol.parse_reply(frame)))
            else:
                log.warning("reply with no command waiting: %s", frame.get("Reply-Text"))
        elif ctype == protocol.AUTH_REQUEST:
            self._auth_request_event.set()
        elif ctype in (protocol.DISCONNECT_NOTICE, "text/rude-rejection"):
            if frame.get("Content-Disposition") != "linger":
                self.connected = False
                self._run = False
        # log/data and unknown content types: not ours to handle

    def api(self, command: str) -> protocol.CommandReply:
        """A blocking `api` command (in this greenlet); raises NotConnectedError."""
        return self.send(f"api {command}").reply

    def close(self) -> None:
        self._run = False
        try:
            self.sock.close()
        except OSError:
            pass
