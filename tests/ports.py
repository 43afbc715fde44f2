"""Free TCP ports on 127.0.0.1 for the servers tests start (the web, S3, Ray)."""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """n distinct ports that were free a moment ago (all held open together while choosing, so they differ)."""
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def free_port() -> int:
    return free_ports(1)[0]
