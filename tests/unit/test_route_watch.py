"""agent.gobgp.RouteWatch without gobgpd: where it takes the table dump to end, and what follows it.

(tests/integration/test_gobgp_watch.py holds a real gobgpd to the same rule.)"""

from __future__ import annotations

import pytest

from agent.errors import GobgpUnavailable
from agent.gobgp import RouteWatch
from protos.gobgpapi import gobgp_pb2 as gobgp
from tests.unit.builders import macip


def table_message(paths: int) -> gobgp.WatchEventResponse:
    """A table message of `paths` paths (of another family: decoded to nothing)."""
    other = gobgp.Family(afi=gobgp.Family.AFI_IP, safi=gobgp.Family.SAFI_UNICAST)
    return gobgp.WatchEventResponse(table=gobgp.WatchEventResponse.TableEvent(paths=[gobgp.Path(family=other)] * paths))


class FakeStream:
    def __init__(self, messages: list[gobgp.WatchEventResponse]) -> None:
        self.messages = messages
        self.cancelled = False

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.messages)

    def cancel(self) -> None:
        self.cancelled = True


@pytest.mark.parametrize(("sizes", "table_messages"), [
    ([0, 3], 1),  # an empty table
    ([4, 2], 1),  # smaller than a message
    ([11, 11, 0, 5], 3),  # full messages, then the empty rest
    ([11, 10, 1], 2),  # the rest holds exactly batch_size paths
    ([11, 3, 11, 0], 2),  # a later change cut the same way is a change
    ([40, 2], 1),  # a gobgpd that does not cut: one message is the whole dump
])
def test_the_dump_ends_with_its_first_message_of_at_most_batch_size_paths(sizes: list[int], table_messages: int) -> None:
    peer = gobgp.WatchEventResponse(peer=gobgp.WatchEventResponse.PeerEvent(type=gobgp.WatchEventResponse.PeerEvent.END_OF_INIT))
    stream = FakeStream([peer] + [table_message(n) for n in sizes])
    watch = RouteWatch(stream, "test", batch=10)
    assert len(list(watch.table())) == table_messages
    assert watch.table_done and not stream.cancelled  # the stream goes on with the changes
    changes = watch.changes()
    after = 0  # every message after the dump is a change, one each, until the stream closes
    with pytest.raises(GobgpUnavailable, match="watch stream closed"):
        while True:
            next(changes)
            after += 1
    assert after == len(sizes) - table_messages
    assert stream.cancelled


def test_changes_before_the_table_is_read_is_a_bug() -> None:
    watch = RouteWatch(FakeStream([table_message(1)]), "test", batch=10)
    with pytest.raises(RuntimeError):
        next(watch.changes())


def test_table_messages_are_decoded() -> None:
    from agent.codec import encode_route

    route = macip("10.0.0.2", mac="02:00:00:00:00:22")
    path = encode_route(route)
    path.neighbor_ip = "10.0.0.100"
    stream = FakeStream([gobgp.WatchEventResponse(table=gobgp.WatchEventResponse.TableEvent(paths=[path]))])
    [(events, errors)] = list(RouteWatch(stream, "test", batch=10).table())
    assert errors == [] and [e.route.key for e in events] == [route.key]


def test_a_whole_table_never_cancels_the_stream_however_late_its_receiver_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver thread puts the table's end and is still alive for a moment: the stream, which carries
    the changes next, must not be cancelled for that (only a caller that stops early cancels it)."""
    import time

    stream = FakeStream([table_message(11), table_message(3), table_message(2)])
    watch = RouteWatch(stream, "test", batch=10)
    receive = RouteWatch._receive_table

    def slow_to_end(self: RouteWatch, out: object) -> None:
        receive(self, out)  # type: ignore[arg-type]
        time.sleep(0.2)  # still alive when the caller has the end

    monkeypatch.setattr(RouteWatch, "_receive_table", slow_to_end)
    assert len(list(watch.table())) == 2 and not stream.cancelled
    changes = watch.changes()
    next(changes)  # the change after the table is still there
    assert not stream.cancelled


def test_a_caller_that_stops_early_cancels_the_stream() -> None:
    import threading

    class Waiting(FakeStream):
        """Sends one message, then waits for more until cancelled."""

        def __init__(self) -> None:
            super().__init__([table_message(11)])
            self.woken = threading.Event()

        def __iter__(self):  # type: ignore[no-untyped-def]
            yield self.messages[0]
            self.woken.wait(5)

        def cancel(self) -> None:
            super().cancel()
            self.woken.set()

    stream = Waiting()
    table = RouteWatch(stream, "test", batch=10).table()
    next(table)
    table.close()  # the receiver is still waiting for the rest: the stream is cancelled, the receiver ends
    assert stream.cancelled
