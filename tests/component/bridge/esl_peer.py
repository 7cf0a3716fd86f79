"""The switch's side of an ESL login, for tests that script the rest of a connection."""
from __future__ import annotations

import socket


def accept_authenticated(server: socket.socket) -> tuple[socket.socket, bytes]:
    """Accept one client on `server` and log it in as mod_event_socket does: ask for the
    password, read the `auth` command, accept it. Returns the connection and whatever
    the client sent after its `auth` command."""
    conn, _ = server.accept()
    conn.sendall(b"Content-Type: auth/request\n\n")
    buf = b""
    while b"\n\n" not in buf:
        data = conn.recv(4096)
        if not data:
            break
        buf += data
    conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
    return conn, buf.partition(b"\n\n")[2]
