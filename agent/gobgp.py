"""gRPC client of the local gobgpd: add/delete our paths, watch the best-path table."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, Iterator

import grpc
from grpc.experimental import ChannelOptions

from protos.gobgpapi import gobgp_pb2 as gobgp
from protos.gobgpapi import gobgp_pb2_grpc as gobgp_grpc

from .codec import EVPN_FAMILY, decode_paths, encode_route
from .errors import GobgpRefused, GobgpUnavailable
from .routes import EvpnRoute, RouteEvent

log = logging.getLogger("evpn.agent.gobgp")

# gRPC codes that mean "no gobgpd to talk to" (the session is over); any other is a refusal of one request
WATCH_BATCH = 2000  # watch batch_size: gobgpd sends at most this + 1 paths per message
TABLE_TIMEOUT = 300.0  # seconds to read a whole table (100k routes take a few)
TABLE_AHEAD = 4  # table messages received ahead of the decoding (each up to WATCH_BATCH + 1 paths, ~1 MB)
MAX_MESSAGE = 64 * 1024 * 1024  # bytes: a defence; table reads are streamed and batched anyway
_CONNECTION_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})


class GobgpClient:
    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout
        # server-streaming calls (the watch, the table read: one message per destination, 100k for a big
        # table) are read in the calling thread, without grpc's extra thread hop per message
        self._channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                                                (ChannelOptions.SingleThreadedUnaryStream, 1)])
        self._stub = gobgp_grpc.GobgpApiStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def wait_ready(self, timeout: float) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise GobgpUnavailable(f"gobgpd at {self.address} not reachable within {timeout:.1f}s") from exc

    def add_path(self, path: gobgp.Path) -> bytes:
        return self._call("AddPath", self._stub.AddPath, gobgp.AddPathRequest(table_type=gobgp.GLOBAL, path=path)).uuid

    def delete_path(self, path: gobgp.Path) -> None:
        self._call("DeletePath", self._stub.DeletePath, gobgp.DeletePathRequest(table_type=gobgp.GLOBAL, family=EVPN_FAMILY, path=path))

    def list_peers(self) -> list[tuple[str, int, str]]:
        """(neighbor address, peer AS, session state name) of every configured neighbor."""
        try:
            peers = [rsp.peer for rsp in self._stub.ListPeer(gobgp.ListPeerRequest(), timeout=self.timeout)]
        except grpc.RpcError as exc:
            raise GobgpUnavailable(f"gobgpd at {self.address}: ListPeer failed: {exc.code().name}") from exc
        state_names = gobgp.PeerState.SessionState
        return [(p.conf.neighbor_address, p.conf.peer_asn, state_names.Name(p.state.session_state)) for p in peers]

    def add_peer(self, peer: gobgp.Peer) -> None:
        self._call("AddPeer", self._stub.AddPeer, gobgp.AddPeerRequest(peer=peer))

    def list_evpn(self, table_type: int = gobgp.GLOBAL, neighbor: str = "") -> list[gobgp.Path]:
        request = gobgp.ListPathRequest(table_type=table_type, name=neighbor, family=EVPN_FAMILY)
        try:
            return [p for rsp in self._stub.ListPath(request, timeout=self.timeout) for p in rsp.destination.paths]
        except grpc.RpcError as exc:
            raise GobgpUnavailable(f"gobgpd at {self.address}: ListPath failed: {exc.code().name}") from exc

    # -- routes as the agent models them (protobuf stays in this module and codec.py) --------

    def add_route(self, route: EvpnRoute) -> None:
        self.add_path(encode_route(route))

    def delete_route(self, route: EvpnRoute) -> None:
        self.delete_path(encode_route(route))

    def watch(self, batch: int = WATCH_BATCH) -> RouteWatch:
        """A watch of the best-path table: gobgpd's dump of the whole table first, then every change
        after it, on one stream (gobgpd registers the watch and queues the dump in one step, so
        nothing is missed or doubled between the two). Raises GobgpUnavailable if gobgpd has not
        started BGP yet (it would send no dump)."""
        try:
            bgp = self._stub.GetBgp(gobgp.GetBgpRequest(), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise GobgpUnavailable(f"gobgpd at {self.address}: GetBgp failed: {exc.code().name}") from exc
        if not bgp.HasField("global") or getattr(bgp, "global").asn == 0:
            raise GobgpUnavailable(f"gobgpd at {self.address}: BGP not started yet (no global AS)")
        request = gobgp.WatchEventRequest(
            table=gobgp.WatchEventRequest.Table(filters=[gobgp.WatchEventRequest.Table.Filter(
                type=gobgp.WatchEventRequest.Table.Filter.BEST, init=True)]),
            batch_size=batch,
        )
        return RouteWatch(self._stub.WatchEvent(request), self.address, batch)

    def list_routes(self) -> tuple[list[RouteEvent], list[str]]:
        """The whole EVPN best-path table, decoded, read with ListPath (one message per destination;
        `watch` is about 3x cheaper for a big table)."""
        request = gobgp.ListPathRequest(table_type=gobgp.GLOBAL, family=EVPN_FAMILY)
        events: list[RouteEvent] = []
        errors: list[str] = []
        try:
            for rsp in self._stub.ListPath(request, timeout=TABLE_TIMEOUT):
                found, failed = decode_paths(p for p in rsp.destination.paths if p.best)
                events += found
                errors += failed
        except grpc.RpcError as exc:
            raise GobgpUnavailable(f"gobgpd at {self.address}: ListPath failed: {exc.code().name}") from exc
        return events, errors

    def _call(self, name: str, method: Callable[..., Any], request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            message = f"gobgpd at {self.address}: {name} failed: {exc.code().name}: {exc.details()}"
            if exc.code() in _CONNECTION_CODES:
                raise GobgpUnavailable(message) from exc
            raise GobgpRefused(message) from exc


class RouteWatch:
    """One WatchEvent stream of the best-path table (BEST filter, init): `table()` reads gobgpd's dump
    of the table, `changes()` everything after it. Read `table()` to its end first, then `changes()`
    (from any one thread at a time).

    Where the dump ends: gobgpd 3.x (pkg/server/server.go, WatchEvent) cuts one event's path list into
    messages of batch_size + 1 paths and always sends the rest, possibly empty, as a last message; the
    dump is one event queued before any later change. So the dump ends with its first message of at
    most batch_size paths (tests/integration/test_gobgp_watch.py holds gobgpd to that, at the
    boundaries)."""

    def __init__(self, stream: Any, address: str, batch: int = WATCH_BATCH, timeout: float = TABLE_TIMEOUT) -> None:
        self._stream = stream
        self._address = address
        self._batch = batch
        self._timeout = timeout
        self._responses = iter(stream)
        self.table_done = False

    def cancel(self) -> None:
        self._stream.cancel()

    def _next_paths(self) -> Any:
        """The paths of the next table message (peer messages are not asked for); GobgpUnavailable at the end."""
        try:
            for rsp in self._responses:
                if rsp.HasField("table"):
                    return rsp.table.paths
        except grpc.RpcError as exc:
            raise GobgpUnavailable(f"gobgpd at {self._address}: watch ended: {exc.code().name}") from exc
        raise GobgpUnavailable(f"gobgpd at {self._address}: watch stream closed")

    def table(self) -> Iterator[tuple[list[RouteEvent], list[str]]]:
        """The table, decoded one message (up to batch_size + 1 paths) at a time. A thread receives the
        messages while the caller decodes the one before (gobgpd keeps sending meanwhile, instead of
        waiting for each decode). A dump that takes longer than `timeout` seconds cancels the stream
        (GobgpUnavailable)."""
        timer = threading.Timer(self._timeout, self._stream.cancel)
        timer.daemon = True
        timer.start()
        received: queue.Queue[Any] = queue.Queue(TABLE_AHEAD)
        receiver = threading.Thread(target=self._receive_table, args=(received,), name="gobgp-table", daemon=True)
        receiver.start()
        completed = False
        try:
            while True:
                paths = received.get()
                if isinstance(paths, BaseException):
                    raise paths
                if paths is None:
                    completed = True  # the receiver is ending by itself; the stream goes on with changes()
                    break
                yield decode_paths(paths)
        finally:
            timer.cancel()
            if not completed and receiver.is_alive():  # the caller stopped early: end the stream, so the receiver ends
                self._stream.cancel()
                while receiver.is_alive():
                    try:
                        received.get(timeout=0.05)  # it may wait to put a message nobody takes now
                    except queue.Empty:
                        pass
            receiver.join()

    def _receive_table(self, out: queue.Queue[Any]) -> None:
        """Put the table's messages (path lists) on `out`, then None; or the exception that ended it."""
        try:
            while not self.table_done:
                paths = self._next_paths()
                # the rest of the dump (at most batch_size paths), or a gobgpd that does not cut messages
                self.table_done = len(paths) <= self._batch or len(paths) > self._batch + 1
                out.put(paths)
            out.put(None)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            out.put(exc)

    def changes(self) -> Iterator[tuple[list[RouteEvent], list[str]]]:
        """Decoded best-path changes after the table (events, malformed-path errors), message by
        message, until the stream ends (GobgpUnavailable)."""
        if not self.table_done:
            raise RuntimeError("RouteWatch.changes() before the table was read")
        try:
            while True:
                yield decode_paths(self._next_paths())
        finally:
            self._stream.cancel()
