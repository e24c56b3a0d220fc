"""Ports for the servers a test or a bench run starts: free when chosen, and chosen outside the
kernel's ephemeral range, so that an outgoing connection opened before the server binds (Ray
opens hundreds while it starts) cannot take the port first. bind(0) would pick from that range.
"""

from __future__ import annotations

import random
import socket

#: Above Ray's default worker ports (10002-19999), below Linux's default ephemeral range
#: (32768-60999, `/proc/sys/net/ipv4/ip_local_port_range`).
PORT_RANGE = (20000, 32767)
_handed_out: set[int] = set()  # never the same port twice in one process (two servers, one run)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now on `host` (closed again before the server binds it)."""
    low, high = PORT_RANGE
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port on {host} in {low}-{high}")
