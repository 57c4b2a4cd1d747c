"""VXLAN source guard: this host accepts VXLAN (UDP to port 4789) only from the VTEPs its RIB names.

The kernel's VXLAN socket takes a packet from any source: whoever can send UDP to this host's VTEP
(a VM that reached the host's stack, a compromised box on the underlay, a spoofed packet that
crossed a router) injects frames into every VNI the host serves. The agent knows which sources
are legitimate: the remote VTEPs of its flood lists (`RibView.remote_vteps()`, the Type-3 routes
it imported). It keeps them in an nftables set of its own table, and one rule on the input hook
drops (and counts) VXLAN from any other source:

    table inet evpn_agent {
        set vxlan_sources_v4 { type ipv4_addr; elements = { <remote VTEPs> } }
        set vxlan_sources_v6 { type ipv6_addr; ... }
        chain vxlan_guard {
            type filter hook input priority filter; policy accept;
            ip saddr != @vxlan_sources_v4 udp dport 4789 counter drop
            ip6 saddr != @vxlan_sources_v6 udp dport 4789 counter drop
        }
    }

The rules are applied with `nft -j -f -` (nftables' own userspace, JSON input: one transaction per
document, so a set is never seen half-updated). The Python bindings of libnftables (Debian's
python3-nftables) live in the system's Python only, not in a virtualenv, and pyroute2's nftables
support cannot manage sets; the nft tool is the kernel project's documented interface.

- The table is installed whole (table, chain, sets, rules, elements in one transaction) the first
  time the agent knows its flood lists (after its first table read), and then follows them by
  element diffs. If a diff fails (someone flushed the table), the table is installed whole again.
- The table stays when the agent stops or restarts: the data plane keeps working with the sources
  it last allowed; the next agent replaces the set atomically once it has read the RIB. Remove it by
  hand with `nft delete table inet evpn_agent` when uninstalling.
- Until the first install on a fresh host, VXLAN is accepted from anyone (there is no table yet).
- It does not replace protecting the host's stack from its own VMs: a VM that can reach the host may
  spoof a legitimate VTEP's address (the lab drops everything from tenant bridges to the host).

Pure: `allowed_sources`, `diff`, `install_commands`, `update_commands`, `document`. Side effect:
`run_nft` and the `VxlanGuard` that calls it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import AgentFailure
from .routes import IPAddress

log = logging.getLogger("evpn.agent.vxlan_guard")

FAMILY = "inet"
TABLE = "evpn_agent"
CHAIN = "vxlan_guard"
SET_V4 = "vxlan_sources_v4"
SET_V6 = "vxlan_sources_v6"
VXLAN_PORT = 4789  # IANA's VXLAN port, the one the agent's vxlan devices use
NFT_TIMEOUT = 10.0  # seconds

Command = dict[str, Any]


class VxlanGuardError(AgentFailure):
    """The guard could not be installed or updated (the agent ends: a host must not run unguarded unnoticed)."""


@dataclass(frozen=True)
class SetChange:
    added: frozenset[IPAddress]
    removed: frozenset[IPAddress]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def allowed_sources(remote_vteps: Mapping[int, Iterable[str]]) -> frozenset[IPAddress]:
    """Every remote VTEP of every served VNI's flood list (VNI -> VTEP addresses)."""
    return frozenset(ipaddress.ip_address(v) for vteps in remote_vteps.values() for v in vteps)


def diff(old: frozenset[IPAddress], new: frozenset[IPAddress]) -> SetChange:
    return SetChange(frozenset(new - old), frozenset(old - new))


def _set_of(address: IPAddress) -> str:
    return SET_V4 if address.version == 4 else SET_V6


def _ref(set_name: str) -> Command:
    return {"family": FAMILY, "table": TABLE, "name": set_name}


def _elements(verb: str, addresses: Iterable[IPAddress]) -> list[Command]:
    """One add/delete element command per set that has addresses (nft refuses an empty element list)."""
    commands = []
    for name in (SET_V4, SET_V6):
        members = sorted((a for a in addresses if _set_of(a) == name), key=lambda a: (a.version, int(a)))
        if members:
            commands.append({verb: {"element": {**_ref(name), "elem": [str(a) for a in members]}}})
    return commands


def _drop_rule(protocol: str, set_name: str, port: int) -> Command:
    expr = [
        {"match": {"op": "!=", "left": {"payload": {"protocol": protocol, "field": "saddr"}}, "right": f"@{set_name}"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": port}},
        {"counter": None},
        {"drop": None},
    ]
    return {"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": CHAIN, "expr": expr,
                             "comment": "evpn-agent: VXLAN only from VTEPs of the RIB"}}}


def install_commands(sources: Iterable[IPAddress], port: int = VXLAN_PORT) -> list[Command]:
    """The whole table, in one transaction: created if missing, its chain and sets emptied and refilled."""
    table = {"family": FAMILY, "name": TABLE}
    chain = {"family": FAMILY, "table": TABLE, "name": CHAIN}
    return [
        {"add": {"table": table}},
        {"add": {"chain": {**chain, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}},
        {"add": {"set": {**_ref(SET_V4), "type": "ipv4_addr"}}},
        {"add": {"set": {**_ref(SET_V6), "type": "ipv6_addr"}}},
        {"flush": {"chain": chain}},
        {"flush": {"set": _ref(SET_V4)}},
        {"flush": {"set": _ref(SET_V6)}},
        _drop_rule("ip", SET_V4, port),
        _drop_rule("ip6", SET_V6, port),
        *_elements("add", sources),
    ]


def update_commands(change: SetChange) -> list[Command]:
    """The set follows the flood lists: removed sources out, new ones in (one transaction)."""
    return _elements("delete", change.removed) + _elements("add", change.added)


def document(commands: list[Command]) -> str:
    return json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]})


def dropped_packets(listing: Mapping[str, Any]) -> int:
    """Packets the guard's rules dropped, from `nft -j list table inet evpn_agent` output."""
    total = 0
    for item in listing.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if isinstance(rule, dict) and rule.get("chain") == CHAIN:
            for expr in rule.get("expr", []):
                if isinstance(expr, dict) and isinstance(expr.get("counter"), dict):
                    total += int(expr["counter"].get("packets", 0))
    return total


# -- side effects ------------------------------------------------------------------------------------


def run_nft(doc: str, args: tuple[str, ...] = ("-f", "-")) -> str:
    """`nft -j <args>` with `doc` on stdin, in this process's network namespace; its stdout, or VxlanGuardError."""
    nft = shutil.which("nft")
    if nft is None:
        raise VxlanGuardError("VXLAN source guard: the nft program is missing (install Debian's 'nftables' package, "
                              "or set vxlan_source_guard: false)")
    try:
        result = subprocess.run([nft, "-j", *args], input=doc, capture_output=True, text=True, timeout=NFT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise VxlanGuardError(f"VXLAN source guard: nft did not answer within {NFT_TIMEOUT:.0f} s") from exc
    if result.returncode != 0:
        raise VxlanGuardError(f"VXLAN source guard: nft failed: {result.stderr.strip()[:300]}")
    return result.stdout


class VxlanGuard:
    """Keeps the nftables set of allowed VXLAN sources equal to the flood lists' VTEPs."""

    def __init__(self, runner: Callable[[str], str] = run_nft, port: int = VXLAN_PORT) -> None:
        self.runner = runner
        self.port = port
        self.applied: frozenset[IPAddress] | None = None  # None: not installed by this process yet

    def follow(self, remote_vteps: Mapping[int, Iterable[str]], keep: bool = False) -> None:
        """Bring the set to the VTEPs of `remote_vteps` (VNI -> VTEPs); nothing to do if it already is.
        With `keep`, sources already allowed stay (stale flood entries are kept: their VTEPs must stay too)."""
        want = allowed_sources(remote_vteps)
        if keep and self.applied is not None:
            want = want | self.applied
        self._apply(want)

    def admit(self, sources: Iterable[IPAddress]) -> None:
        """Allow `sources` too, now, in one transaction (none removed); nothing to do if they already are.
        Only after the install: before it this process does not know the set (a previous agent's table may hold it)."""
        if self.applied is None:
            raise RuntimeError("VXLAN source guard: admit() before the table was installed (call follow() first)")
        self._apply(self.applied | frozenset(sources))

    def _apply(self, want: frozenset[IPAddress]) -> None:
        if want == self.applied:
            return
        if self.applied is not None:
            change = diff(self.applied, want)
            try:
                self.runner(document(update_commands(change)))
                self.applied = want
                log.info("event=vxlan-guard-updated sources=%d added=%s removed=%s", len(want),
                         ",".join(sorted(map(str, change.added))) or "-", ",".join(sorted(map(str, change.removed))) or "-")
                return
            except VxlanGuardError as exc:
                log.warning("event=vxlan-guard-update-failed error=%r (installing the table whole)", str(exc))
        self.runner(document(install_commands(want, self.port)))
        self.applied = want
        log.info("event=vxlan-guard-installed table=%s/%s sources=%d (%s)", FAMILY, TABLE, len(want),
                 ",".join(sorted(map(str, want))) or "-")
