"""The session's safety net really refuses a connect beyond loopback, before any packet leaves."""

import socket

import pytest


@pytest.mark.parametrize("address", [("10.255.255.1", 80), ("169.254.169.254", 80), ("192.0.2.1", 443)])
def test_connect_beyond_loopback_is_refused(address, connects):
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="test safety net"):
        sock.connect(address)
    assert connects == []


def test_loopback_connects_are_allowed_and_recorded(connects):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = server.getsockname()
        with socket.create_connection(address, timeout=5):
            pass
    assert connects == [address]
