"""gRPC client of the local gobgpd: add/delete our paths, watch the best-path table."""

from __future__ import annotations

import logging
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
WATCH_BATCH = 2000  # paths per watch message at most
TABLE_TIMEOUT = 300.0  # seconds to read a whole table (100k routes take a few)
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

    def watch_routes(self, on_subscribed: Callable[[], None] = lambda: None) -> Iterator[tuple[list[RouteEvent], list[str]]]:
        """Decoded best-path changes (events, malformed-path errors) from now on, at most WATCH_BATCH
        paths per message. `on_subscribed` is called once gobgpd has registered the watch (its
        END_OF_INIT of the peer states, sent only when there is at least one neighbor): from then on no
        change is missed, so a table read after it (list_routes) plus this stream is complete."""
        request = gobgp.WatchEventRequest(
            peer=gobgp.WatchEventRequest.Peer(),
            table=gobgp.WatchEventRequest.Table(filters=[gobgp.WatchEventRequest.Table.Filter(type=gobgp.WatchEventRequest.Table.Filter.BEST)]),
            batch_size=WATCH_BATCH,
        )
        stream = self._stub.WatchEvent(request)
        end_of_init = gobgp.WatchEventResponse.PeerEvent.END_OF_INIT
        try:
            for rsp in stream:
                if rsp.HasField("peer"):
                    if rsp.peer.type == end_of_init:
                        on_subscribed()
                elif rsp.HasField("table"):
                    yield decode_paths(rsp.table.paths)
        except grpc.RpcError as exc:
            raise GobgpUnavailable(f"gobgpd at {self.address}: watch ended: {exc.code().name}") from exc
        finally:
            stream.cancel()
        raise GobgpUnavailable(f"gobgpd at {self.address}: watch stream closed")

    def list_routes(self) -> tuple[list[RouteEvent], list[str]]:
        """The whole EVPN best-path table, decoded. gobgpd streams it one destination per message, so
        no message grows with the table (one message of the whole table broke gRPC's 4 MiB limit)."""
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
