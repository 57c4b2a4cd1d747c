"""`evpn-agent status`: what a person asks first, from the running agent's status file (pure)."""

from __future__ import annotations

import time
from typing import Any

LIVE_WITHIN = 15.0  # seconds: a status file older than this means the agent's loop is not running


def summary(status: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The fields an operator asks for first, with liveness judged from the file's age."""
    now = time.time() if now is None else now
    age = now - float(status.get("updated") or 0)
    remote = status.get("remote_vteps") or {}
    macs = status.get("local_macs")
    return {
        "name": status.get("name"),
        "vtep": status.get("vtep"),
        "pid": status.get("pid"),
        "live": age <= LIVE_WITHIN,
        "status_age_seconds": round(age, 1),
        "ready": bool(status.get("ready")) and age <= LIVE_WITHIN,
        "kernel_verified": bool(status.get("kernel_verified")),
        "gobgp_session": "up" if status.get("connected") else "down",
        "stale_pending": bool(status.get("stale_pending")),
        "held_withdrawals": int(status.get("held_withdrawals") or 0),
        "vnis": {vni: {"remote_vteps": remote.get(vni, []), **info} for vni, info in (status.get("vnis") or {}).items()},
        "routes": status.get("routes"),
        "owned_entries": status.get("owned_fdb_entries"),
        "local_macs": len(macs) if isinstance(macs, dict) else macs,
        "frozen_macs": status.get("frozen_macs", []),
        "frozen_ips": status.get("frozen_ips", []),
        "counters": {key: status.get(key) for key in ("reconnects", "malformed_routes", "kernel_errors", "refused_requests",
                                                         "macs_over_limit", "ignored_local_ips", "resync_repaired",
                                                         "withdrawals_held", "withdrawals_cancelled", "withdrawals_released")},
        "last_errors": status.get("last_errors", []),
    }


def render(view: dict[str, Any]) -> list[str]:
    """Plain text lines of a summary."""
    state = "ready" if view["ready"] else ("NOT LIVE" if not view["live"] else "not ready")
    lines = [f"{view['name']}  vtep {view['vtep']}  pid {view['pid']}  {state} (status {view['status_age_seconds']}s old)",
             f"gobgpd session {view['gobgp_session']}" + ("  (stale entries pending removal)" if view["stale_pending"] else "")
             + (f"  ({view['held_withdrawals']} stale withdrawals held)" if view.get("held_withdrawals") else "")
            + ("  (kernel not verified yet: ready from the ledger)" if view["ready"] and not view.get("kernel_verified") else ""),
             f"routes {view['routes']}  owned kernel entries {view['owned_entries']}  local MACs {view['local_macs']}"]
    for vni, info in sorted(view["vnis"].items(), key=lambda kv: int(kv[0])):
        vteps = ", ".join(info["remote_vteps"]) or "-"
        lines.append(f"VNI {vni} ({info.get('device')} on {info.get('bridge')}): remote VTEPs {vteps}")
    if view["frozen_macs"] or view["frozen_ips"]:
        lines.append(f"frozen (duplicate detection): {', '.join(view['frozen_macs'] + view['frozen_ips'])}")
    counters = "  ".join(f"{k}={v}" for k, v in view["counters"].items() if v)
    lines.append(f"counters: {counters or 'all zero'}")
    for error in view["last_errors"][-5:]:
        stamp = time.strftime("%H:%M:%S", time.localtime(float(error.get("time", 0))))
        lines.append(f"  {stamp} {error.get('level')}: {error.get('message')}")
    return lines
