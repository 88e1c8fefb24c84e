"""Who is on the other end of a loopback TCP connection: the uid that owns the
client's socket, from the kernel's socket table (/proc/net/tcp, tcp6). The
exporter answers no tenant or pool user: every pool's PHP could reach
127.0.0.1, and the metrics name every tenant (as /server-status would).
Parsing is pure."""

from __future__ import annotations

import ipaddress

PROC_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
MAX_TABLE_BYTES = 32 << 20


def kernel_address(host: str, port: int) -> str:
    """`host:port` as /proc/net/tcp{,6} prints it: each 32-bit word of the address
    in host (little-endian) byte order, in hex, then the port in hex."""
    packed = ipaddress.ip_address(host).packed
    words = "".join(f"{int.from_bytes(packed[i:i + 4], 'little'):08X}"
                    for i in range(0, len(packed), 4))
    return f"{words}:{port:04X}"


def _mapped(host: str) -> str | None:
    """127.0.0.1 as an IPv4-mapped IPv6 address (a dual-stack socket's view)."""
    addr = ipaddress.ip_address(host)
    return f"::ffff:{addr}" if addr.version == 4 else None


def find_uid(table: str, client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """Pure: the uid of the socket whose local end is `client` and remote end is
    `server` in a /proc/net/tcp{,6} text, or None."""
    hosts = [(client[0], server[0])]
    mc, ms = _mapped(client[0]), _mapped(server[0])
    if mc and ms:
        hosts.append((mc, ms))
    wanted = {(kernel_address(c, client[1]), kernel_address(s, server[1])) for c, s in hosts}
    for line in table.splitlines()[1:]:
        parts = line.split()
        if len(parts) > 7 and (parts[1], parts[2]) in wanted and parts[7].isdigit():
            return int(parts[7])
    return None


def peer_uid(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid owning the client end of this loopback connection, or None."""
    for path in PROC_TCP:
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                uid = find_uid(fh.read(MAX_TABLE_BYTES), client, server)
        except OSError:
            continue
        if uid is not None:
            return uid
    return None
