"""A small inbound Event Socket client for the realfs tests, recording the exact bytes in
both directions (the format of tests/fixtures/esl: NAME.txt, NAME.sent.txt,
NAME.transcript.txt)."""
from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Frame:
    headers: dict[str, str]
    body: bytes
    raw: bytes
    at: float

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def event(self) -> dict[str, str]:
        """A `text/event-plain` frame's event headers (URL-decoded values)."""
        out: dict[str, str] = {}
        text = self.body.decode(errors="replace")
        head = text.split("\n\n", 1)[0]
        for line in head.splitlines():
            name, sep, value = line.partition(": ")
            if sep:
                out[name] = urllib.parse.unquote(value)
        return out


@dataclass
class Esl:
    host: str
    port: int
    password: str
    record: list[tuple[float, str, bytes, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=10)
        self.t0 = time.monotonic()
        self.buf = b""
        self.lock = threading.Lock()
        self.replies: list[Frame] = []
        self.events: list[Frame] = []
        self.cond = threading.Condition()
        first = self._read_frame()
        assert first.content_type == "auth/request", first.headers
        self._send(f"auth {self.password}\n\n", secret=self.password)
        reply = self._read_frame()
        if not reply.headers.get("Reply-Text", "").startswith("+OK"):
            raise ConnectionError(f"ESL auth refused: {reply.headers.get('Reply-Text')}")
        self.reader = threading.Thread(target=self._loop, daemon=True)
        self.reader.start()

    def _send(self, text: str, secret: str = "") -> None:
        data = text.encode()
        shown = text.replace(secret, "REDACTED").encode() if secret else data
        self.record.append((time.monotonic() - self.t0, "SENT", shown, ""))
        self.sock.sendall(data)

    def _read_frame(self) -> Frame:
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("ESL connection closed")
            self.buf += chunk
        head, rest = self.buf.split(b"\n\n", 1)
        headers = {}
        for line in head.decode(errors="replace").splitlines():
            name, _, value = line.partition(": ")
            headers[name] = value
        length = int(headers.get("Content-Length", "0"))
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("ESL connection closed")
            rest += chunk
        body, self.buf = rest[:length], rest[length:]
        raw = head + b"\n\n" + body
        at = time.monotonic() - self.t0
        ctype = headers.get("Content-Type", "")
        self.record.append((at, "RECV", raw, ctype))
        return Frame(headers, body, raw, at)

    def _loop(self) -> None:
        self.sock.settimeout(None)
        try:
            while True:
                frame = self._read_frame()
                with self.cond:
                    if frame.content_type in ("command/reply", "api/response"):
                        self.replies.append(frame)
                    else:
                        self.events.append(frame)
                    self.cond.notify_all()
        except (ConnectionError, OSError):
            with self.cond:
                self.cond.notify_all()

    def command(self, text: str, timeout: float = 10) -> Frame:
        """Send one command (`api status`, `event plain ALL`) and wait for its reply."""
        with self.cond:
            before = len(self.replies)
        self._send(text.rstrip("\n") + "\n\n")
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.replies) > before, timeout):
                raise TimeoutError(f"no reply to {text!r}")
            return self.replies[before]

    def api(self, command: str) -> str:
        return self.command(f"api {command}").body.decode(errors="replace")

    def wait_event(self, predicate, timeout: float) -> dict[str, str] | None:
        """The first plain event (decoded headers) matching `predicate`, waiting for it."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for frame in self.events[seen:]:
                    if frame.content_type == "text/event-plain" and predicate(frame.event()):
                        return frame.event()
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def plain_events(self) -> list[dict[str, str]]:
        with self.cond:
            frames = list(self.events)
        return [f.event() for f in frames if f.content_type == "text/event-plain"]

    def close(self) -> None:
        try:
            self._send("exit\n\n")
            time.sleep(0.2)
        except OSError:
            pass
        self.sock.close()

    def keep(self, name: str) -> None:
        """Save this socket's stream as fixture NAME when TONGDAI_REALFS_CAPTURE names a
        folder (how tests/fixtures/esl's real captures are recorded)."""
        import os

        folder = os.environ.get("TONGDAI_REALFS_CAPTURE")
        if folder:
            self.save(Path(folder), name)

    def save(self, folder: Path, name: str) -> None:
        """Write NAME.txt (received), NAME.sent.txt and NAME.transcript.txt."""
        recv = b"".join(raw for _, d, raw, _ in self.record if d == "RECV")
        sent = b"".join(raw for _, d, raw, _ in self.record if d == "SENT")
        lines = []
        for at, direction, raw, ctype in self.record:
            arrow = "<<<" if direction == "RECV" else ">>>"
            kind = f" ({ctype})" if ctype else ""
            lines.append(f"===== {at:.3f} {arrow} {direction} {len(raw)} bytes{kind}\n".encode()
                         + raw + b"\n")
        (folder / f"{name}.txt").write_bytes(recv)
        (folder / f"{name}.sent.txt").write_bytes(sent)
        (folder / f"{name}.transcript.txt").write_bytes(b"\n".join(lines))
