"""Kind "gobgp": a hypervisor running gobgpd and our evpn-agent (the project's own implementation)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

from agent.routes import RouteEvent
from agent.statusview import LIVE_WITHIN

from .. import daemons
from ..errors import LabError
from ..observe import wait_until
from ..rundir import write_private_json
from .base import ControlView, HostNode, daemon_pid, start_daemon
from .gobgpd import Gobgpd

LIVENESS = LIVE_WITHIN  # seconds: an agent's status file older than this (it rewrites it every 5 s) = not live


def agent_liveness(status: dict[str, object], running_pid: int, now: float, limit: float = LIVENESS) -> str | None:
    """Why the agent's status file cannot be believed ("not running", "not live"), or None if it can: the
    file must come from the agent process running now and be fresher than `limit` seconds."""
    if not running_pid:
        return "not running"
    if not status:
        return None  # starting: no file yet (ControlView says "starting")
    if status.get("pid") != running_pid:
        return "starting"  # the file of a previous agent: the new one has not written its own yet
    updated = status.get("updated")
    if not isinstance(updated, (int, float)) or now - updated > limit:
        return "not live"
    return None


class GobgpAgentNode(HostNode):
    kind = "gobgp"

    @property
    def gobgpd(self) -> Gobgpd:
        return Gobgpd(self.plan, self.state, self.name)

    def start(self) -> None:
        for step in self.start_phases():
            step()

    def start_phases(self) -> list[Callable[[], None]]:
        return [self.start_daemons, self.gobgpd.wait_api]

    def start_daemons(self) -> None:
        """gobgpd, then the agent at once: the agent waits for gobgpd's API itself (it retries), so its
        start-up (imports, reading the bridges) overlaps gobgpd's and, in `up`, the other hosts' builds,
        while the CPU is not yet busy with BGP."""
        self.start_gobgpd()
        self.start_agent()

    def start_gobgpd(self) -> None:
        self.gobgpd.start(self.plan.gobgpd_host_config(self.host))

    def start_agent(self) -> None:
        files = self.plan.files(self.name)
        self._write_agent_config()
        files.agent_status.unlink(missing_ok=True)
        argv = [daemons.find_program("evpn-agent"), "run", "--config", str(files.agent_config)]
        start_daemon(self.plan, self.state, self.name, "agent", argv, files.agent_log)

    def _write_agent_config(self) -> dict[str, object]:
        config = self.plan.agent_config(self.host)
        write_private_json(self.plan.files(self.name).agent_config, config, indent=1)
        return config

    def agent_status(self) -> dict[str, object]:
        """The agent's status file as it is (empty while there is none)."""
        try:
            return dict(json.loads(self.plan.files(self.name).agent_status.read_text()))
        except (OSError, ValueError):
            return {}

    def read_rib(self) -> list[RouteEvent]:
        return self.gobgpd.read_rib()

    def paths_from(self, neighbor: str) -> int:
        return self.gobgpd.paths_from(neighbor)

    def control_view(self) -> ControlView:
        status = self.agent_status()
        running = daemon_pid(self.plan, self.name, "agent")
        live = agent_liveness(status, running, time.time())
        if live is not None:  # a dead agent's last file says nothing about now
            return ControlView(live, False, False, {})
        state = ("ready" if status.get("kernel_verified") else "verifying") if status.get("ready") else "starting"
        if status and not status.get("connected"):
            state = "unreachable"
        remote = status.get("remote_vteps") or {}
        # nothing pending removal, and the kernel read since the (re)start (a restart is ready from its ledger first)
        settled = not status.get("stale_pending", True) and not status.get("held_withdrawals") and bool(status.get("kernel_verified"))
        return ControlView(state, bool(status.get("ready")), settled,
                           {str(k): list(v) for k, v in remote.items()} if isinstance(remote, dict) else {})

    def reconfigure(self) -> None:
        """Rewrite the agent's config from the plan, SIGHUP the agent, wait until it serves those VNIs."""
        config = self._write_agent_config()
        pid = self.state.pids.get(self.name, {}).get("agent")
        if not pid or not daemons.alive(pid, self.plan.files(self.name).marker):
            raise LabError(f"the agent on {self.name} is not running")
        os.kill(pid, signal.SIGHUP)
        want = {str(v["vni"]) for v in config["vnis"]}  # type: ignore[union-attr, index, attr-defined]

        def serving() -> bool:
            view = self.control_view()
            return set(view.remote_vteps) == want and view.ready and view.settled

        wait_until(f"the agent on {self.name} to serve VNIs {','.join(sorted(want))}", serving, 60)


NODE = GobgpAgentNode
