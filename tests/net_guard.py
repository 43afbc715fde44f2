"""A safety net for the whole test session: a real audit hook on socket.connect that refuses any destination outside
loopback (no test may send a packet off the machine), and can record the addresses a test dials."""

from __future__ import annotations

import ipaddress
import sys


def is_loopback(host: str) -> bool:
    host = host.split("%", 1)[0]
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


class ConnectGuard:
    """Raises ConnectionRefusedError for a connect to anything but loopback; records addresses while `active`."""

    def __init__(self):
        self.active = False
        self.addresses: list = []

    def __call__(self, event, args):
        if event != "socket.connect":
            return
        address = args[1]
        if isinstance(address, tuple) and not is_loopback(str(address[0])):
            raise ConnectionRefusedError(f"test safety net: connect to {address} blocked (not loopback)")
        if self.active:
            self.addresses.append(address)


GUARD = ConnectGuard()
sys.addaudithook(GUARD)
