"""gobgpd in a node's namespace: its config file, starting it, its gRPC API (over a unix socket in the
node's run directory), its RIB and sessions. Used by the controller and by gobgp hypervisors."""

from __future__ import annotations

from agent.codec import decode_paths
from agent.gobgp import GobgpClient
from agent.routes import RouteEvent

from .. import daemons
from ..bgp import Neighbor
from ..errors import LabError
from ..observe import wait_until
from ..plan import GOBGP_API, LabPlan
from ..rundir import private_file, write_private
from ..state import LabState
from .base import start_daemon


RIB_READ_TIMEOUT = 120.0  # seconds to read a whole RIB (ListPath streams it, one destination per message)


class Gobgpd:
    """The gobgpd of node `node` (a namespace of the lab)."""

    def __init__(self, plan: LabPlan, state: LabState, node: str) -> None:
        self.plan = plan
        self.state = state
        self.node = node
        self.files = plan.files(node)

    def client(self, timeout: float = 3.0) -> GobgpClient:
        return GobgpClient(f"unix://{self.files.gobgpd_socket}", timeout=timeout)

    def start(self, config: str) -> None:
        """Write `config` and start gobgpd with it (API on the namespace's loopback and on the node's socket)."""
        write_private(self.files.gobgpd_config, config)
        sock = self.files.gobgpd_socket
        sock.unlink(missing_ok=True)
        argv = [daemons.find_program("gobgpd"), "-f", str(self.files.gobgpd_config), "-t", "toml", "-p", "--pprof-disable",
                "--api-hosts", f"{GOBGP_API},unix://{sock}"]
        # restarted by its supervisor with -r: the graceful-restart "Restart State" bit, so peers keep its
        # routes and it defers its own updates until it has its peers' End-of-RIB (RFC 4724 §4.1)
        start_daemon(self.plan, self.state, self.node, "gobgpd", argv, self.files.gobgpd_log, restart_args=("-r",), unlink=(sock,))

    def api_up(self) -> bool:
        if not self.files.gobgpd_socket.exists():
            return False
        client = self.client()
        try:
            client.list_peers()
            return True
        finally:
            client.close()

    def wait_api(self) -> None:
        """Until the API answers; then its socket (full control of BGP) is made root-only, whatever gobgpd's umask."""
        wait_until(f"gobgpd API on {self.node}", self.api_up, 10)
        private_file(self.files.gobgpd_socket)

    def read_rib(self) -> list[RouteEvent]:
        client = self.client(timeout=RIB_READ_TIMEOUT)  # the whole streamed table, not one call: 100k routes take seconds
        try:
            events, errors = decode_paths(p for p in client.list_evpn() if p.best)  # one path per route (two controllers: two paths)
        finally:
            client.close()
        if errors:
            raise LabError(f"{self.node}: malformed routes in RIB: {errors[0]}")
        return events

    def paths_from(self, neighbor: str) -> int:
        """How many EVPN paths (best or not, stale included) the RIB holds from neighbour `neighbor`."""
        client = self.client(timeout=RIB_READ_TIMEOUT)
        try:
            return sum(1 for p in client.list_evpn() if p.neighbor_ip == neighbor)
        finally:
            client.close()

    def sessions(self) -> dict[str, str]:
        """Neighbour address -> BGP session state."""
        client = self.client()
        try:
            return {addr: state for addr, _, state in client.list_peers()}
        finally:
            client.close()

    def add_peer(self, neighbor: Neighbor) -> None:
        client = self.client()
        try:
            client.add_peer(neighbor.gobgp_peer())
        finally:
            client.close()
