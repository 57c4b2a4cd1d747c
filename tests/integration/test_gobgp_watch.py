"""The agent reads gobgpd's table from a watch's initial dump (agent/gobgp.py RouteWatch), against a real
gobgpd (API on a unix socket, BGP port off: no network, no namespace).

RouteWatch takes the dump's first message of at most batch_size paths as its last one (gobgpd cuts a
path list into messages of batch_size + 1 paths and always sends the rest, even empty). These tests
hold gobgpd 3.x to that at the boundaries: a table that fills its messages exactly (an empty last
message), one whose last message has batch_size paths, one smaller than a message, an empty table;
each time the table is complete and a change made after the dump arrives as a change, not as table.
They also hold the table read against ListPath (the previous way), route for route.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import GobgpUnavailable
from agent.gobgp import GobgpClient, RouteWatch
from agent.routes import RouteEvent
from protos import dist
from tests.integration.scalekit import FakeVtep, inject

VTEP = ipaddress.IPv4Address("10.0.0.200")
FIRST_IP = ipaddress.IPv4Address("172.17.0.0")
CHANGE_TIMEOUT = 30  # seconds for an injected route to come as a change


@pytest.fixture
def gobgpd(tmp_path: Path) -> Iterator[str]:
    """A gobgpd of its own (AS 65000, no listening BGP port): its API address."""
    config = tmp_path / "gobgpd.toml"
    config.write_text('[global.config]\n  as = 65000\n  router-id = "10.0.0.250"\n  port = -1\n')
    sock = tmp_path / "gobgpd.sock"
    address = f"unix://{sock}"
    log = (tmp_path / "gobgpd.log").open("w")
    proc = subprocess.Popen([str(dist.program("gobgpd")), "-f", str(config), "-t", "toml", "-p", "--pprof-disable",
                             "--api-hosts", address], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            client = GobgpClient(address)
            try:
                client.wait_ready(1.0)
                client.watch().cancel()  # BGP started (GetBgp has the AS)
                break
            except GobgpUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            finally:
                client.close()
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def read_table(address: str, batch: int) -> tuple[list[RouteEvent], int, GobgpClient, RouteWatch]:
    """The table read through a watch with `batch`, the number of messages, the client and the watch
    (to read changes next)."""
    client = GobgpClient(address)
    watch = client.watch(batch)
    table: list[RouteEvent] = []
    messages = 0
    for events, errors in watch.table():
        assert errors == []
        table += events
        messages += 1
    return table, messages, client, watch


@pytest.mark.parametrize(("table", "batch", "messages"), [
    (0, 10, 1),  # empty table: one empty message
    (7, 10, 1),  # smaller than a message
    (22, 10, 3),  # 11 + 11 + an empty last message
    (21, 10, 2),  # 11 + 10: the last message holds exactly batch_size paths
    (23, 10, 3),  # 11 + 11 + 1
])
def test_the_dump_ends_where_the_watch_says_and_changes_follow(gobgpd: str, table: int, batch: int, messages: int) -> None:
    routes = FakeVtep(VTEP, 100, "65000:100", FIRST_IP, table + 1)
    if table:
        inject(gobgpd, FakeVtep(VTEP, 100, "65000:100", FIRST_IP, table))
    events, count, client, watch = read_table(gobgpd, batch)
    try:
        assert count == messages
        macs = [e.route.mac for e in events]  # type: ignore[union-attr]
        assert sorted(macs) == sorted(routes.mac(i) for i in range(table))
        inject(gobgpd, routes)  # the same `table` routes again (no change) and one more
        changes = watch.changes()
        seen: list[str] = []
        signal.signal(signal.SIGALRM, _no_change)
        signal.alarm(CHANGE_TIMEOUT)  # a change that never comes fails the test instead of hanging it
        while routes.mac(table) not in seen:
            events, errors = next(changes)
            assert errors == []
            seen += [e.route.mac for e in events]  # type: ignore[union-attr]
    finally:
        signal.alarm(0)
        client.close()


def _no_change(signum: int, frame: object) -> None:
    raise TimeoutError(f"the added route's change did not come within {CHANGE_TIMEOUT}s of the dump")


def test_the_watch_reads_what_listpath_reads(gobgpd: str) -> None:
    inject(gobgpd, FakeVtep(VTEP, 100, "65000:100", FIRST_IP, 5000))
    events, count, client, _watch = read_table(gobgpd, 2000)
    try:
        listed, errors = client.list_routes()
        assert errors == []
        assert count == 3  # 2001 + 2001 + 998
        assert len(events) == 5000
        assert sorted(events, key=lambda e: e.route.key) == sorted(listed, key=lambda e: e.route.key)
    finally:
        client.close()
