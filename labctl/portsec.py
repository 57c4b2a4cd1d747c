"""Tenant isolation on a hypervisor: port security per VM port, and the host's own stack out of the VMs' reach.

A VM is untrusted tenant code. Two nftables layers on every hypervisor (both kinds), named so that
`nft list tables` in a hypervisor's namespace shows what is the lab's:

- `table bridge evpn_lab_ports` (hook prerouting: every frame a port brings in, before the bridge
  learns its source MAC or forwards it). Each VM port jumps (verdict map on the input interface) to a
  chain of its own, which admits only, as OpenStack's port security does:
    * frames whose source MAC is the VM's (or an allowed-address-pair's MAC),
    * ARP whose sender MAC/IP is one of the VM's (MAC, IP) pairs (ARP probes from 0.0.0.0 too),
    * IPv4 from one of its (MAC, IP) pairs (no DHCP in the lab: 0.0.0.0 is not allowed),
    * IPv6 from its link-local address (EUI-64 of its MAC), from :: (duplicate address detection),
      or from an allowed pair; a neighbour advertisement only for one of those addresses,
    * nothing else (other ethertypes, VLAN tags).
  A VM with `port_security: false` gets a chain that accepts everything. Ports the lab did not plug
  (none in a lab) have no chain and are not filtered.
- `table arp evpn_lab_host` and `table inet evpn_lab_host`: nothing that arrives through a tenant
  bridge reaches the hypervisor's stack. IPv4/IPv6 with a bridge as input interface is dropped at
  prerouting (also what the host would forward), ARP on input. A hypervisor that learns VM addresses
  from ARP on its bridge (kind frr: zebra reads the kernel's neighbours) lets ARP in unless it asks
  for one of the host's addresses, so the host never answers. Bridged traffic between VMs is not
  touched (it never reaches these hooks), and neither are the agent's packet sockets: they see frames
  before the ARP and IP layers.

Everything here but `load` is pure: the rulesets are text in nft's own syntax, one transaction each.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import LabError
from .topology import Vm

log = logging.getLogger("evpn.labctl.portsec")

PORTS_TABLE = "evpn_lab_ports"  # family bridge
HOST_TABLE = "evpn_lab_host"  # families arp and inet
PORT_MAP = "port_chains"

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


def link_local(mac: str) -> ipaddress.IPv6Address:
    """The IPv6 link-local address a Linux VM derives from its MAC (modified EUI-64)."""
    octets = bytearray(int(b, 16) for b in mac.split(":"))
    octets[0] ^= 0x02
    iid = bytes(octets[:3]) + b"\xff\xfe" + bytes(octets[3:])
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid)


@dataclass(frozen=True)
class PortPolicy:
    """What one VM port admits: (MAC, address or prefix) pairs; `enabled` false admits everything."""

    chain: str
    pairs: tuple[tuple[str, IPNet], ...]
    enabled: bool = True

    @property
    def macs(self) -> list[str]:
        return sorted({mac for mac, _ in self.pairs})

    def of_version(self, version: int) -> list[tuple[str, IPNet]]:
        return [(mac, net) for mac, net in self.pairs if net.version == version]


def chain_name(vm: Vm) -> str:
    return f"vm_{vm.name}"


def port_policy(vm: Vm, ip: ipaddress.IPv4Address | None = None) -> PortPolicy:
    """The policy of `vm`'s port (`ip`: an address it is being given instead of the topology's)."""
    own = ip if ip is not None else vm.ip
    pairs: list[tuple[str, IPNet]] = [
        (vm.mac, ipaddress.ip_network(own)),
        (vm.mac, ipaddress.ip_network(link_local(vm.mac))),
        (vm.mac, ipaddress.ip_network("::/128")),
    ]
    pairs += [(p.mac or vm.mac, p.ip) for p in vm.allowed_address_pairs]
    return PortPolicy(chain_name(vm), tuple(dict.fromkeys(pairs)), vm.port_security)


def _pair_set(pairs: Iterable[tuple[str, IPNet]]) -> str:
    return "{ " + ", ".join(f"{mac} . {net.with_prefixlen if net.prefixlen < net.max_prefixlen else net.network_address}"
                            for mac, net in pairs) + " }"


def port_chain(policy: PortPolicy) -> list[str]:
    """The rules of one port's chain (nft syntax), in order."""
    if not policy.enabled:
        return ["counter accept comment \"port security off\""]
    v4 = policy.of_version(4)
    v6 = policy.of_version(6)
    arp = v4 + [(mac, ipaddress.ip_network("0.0.0.0/32")) for mac in policy.macs]  # ARP probes (RFC 5227)
    nd_targets = [net.network_address for _, net in v6 if net.prefixlen == 128 and not net.network_address.is_unspecified]
    rules = [
        "ether saddr != { " + ", ".join(policy.macs) + " } counter drop comment \"not the VM's MAC\"",
        f"ether type arp arp saddr ether . arp saddr ip {_pair_set(arp)} accept",
        "ether type arp counter drop comment \"ARP for an address not the VM's\"",
        f"ether type ip ether saddr . ip saddr {_pair_set(v4)} accept",
        "ether type ip counter drop comment \"IPv4 from an address not the VM's\"",
    ]
    if nd_targets:
        targets = ", ".join(f"0x{int(a):032x}" for a in sorted(set(nd_targets)))
        rules.append(f"ether type ip6 icmpv6 type nd-neighbor-advert @th,64,128 != {{ {targets} }} counter drop "
                     "comment \"neighbour advert for an address not the VM's\"")
    rules += [
        f"ether type ip6 ether saddr . ip6 saddr {_pair_set(v6)} accept",
        "counter drop comment \"anything else\"",
    ]
    return rules


def ports_base() -> str:
    """The port-security table of a hypervisor, empty of ports (replaces any earlier one)."""
    return f"""table bridge {PORTS_TABLE}
delete table bridge {PORTS_TABLE}
table bridge {PORTS_TABLE} {{
	map {PORT_MAP} {{
		type ifname : verdict
	}}
	chain ports_in {{
		type filter hook prerouting priority filter; policy accept;
		iifname vmap @{PORT_MAP}
	}}
}}
"""


def port_rules(port: str, policy: PortPolicy) -> str:
    """One VM port's chain and its entry in the verdict map (replaces an earlier chain of the same VM)."""
    body = "".join(f"add rule bridge {PORTS_TABLE} {policy.chain} {rule}\n" for rule in port_chain(policy))
    return (f"add chain bridge {PORTS_TABLE} {policy.chain}\n"
            f"flush chain bridge {PORTS_TABLE} {policy.chain}\n"
            f"{body}"
            f"add element bridge {PORTS_TABLE} {PORT_MAP} {{ \"{port}\" : jump {policy.chain} }}\n")


def host_rules(host_addresses: Iterable[ipaddress.IPv4Address | ipaddress.IPv4Network], learn_arp: bool) -> str:
    """The host's stack out of the tenant bridges' reach (replaces any earlier version).

    `learn_arp`: ARP that asks for none of `host_addresses` may reach the stack (the kernel learns VM
    neighbours from it: FRR); otherwise no ARP from a bridge reaches it at all.
    """
    addresses = ", ".join(sorted({str(a) for a in host_addresses}))
    arp_learning = f"\t\tmeta iifkind \"bridge\" arp daddr ip != {{ {addresses} }} accept\n" if learn_arp else ""
    return f"""table arp {HOST_TABLE}
delete table arp {HOST_TABLE}
table arp {HOST_TABLE} {{
	chain from_tenants {{
		type filter hook input priority filter; policy accept;
{arp_learning}		meta iifkind "bridge" counter drop comment "ARP from a tenant bridge"
	}}
}}
table inet {HOST_TABLE}
delete table inet {HOST_TABLE}
table inet {HOST_TABLE} {{
	chain from_tenants {{
		type filter hook prerouting priority raw; policy accept;
		meta iifkind "bridge" counter drop comment "IP from a tenant bridge to the host"
	}}
}}
"""


# -- side effect -------------------------------------------------------------------------------------


def load(ns_name: str, ruleset: str) -> None:
    """Apply `ruleset` (one nft transaction) inside namespace `ns_name`."""
    try:
        result = subprocess.run(["ip", "netns", "exec", ns_name, "nft", "-f", "-"], input=ruleset, capture_output=True,
                                text=True, timeout=20, check=False)
    except FileNotFoundError as exc:
        raise LabError("the ip program is missing (scripts/bootstrap installs iproute2)") from exc
    if result.returncode != 0:
        error = result.stderr.strip()
        if "No such file or directory" in error and "nft" in error:
            error = "the nft program is missing (scripts/bootstrap installs Debian's nftables package)"
        raise LabError(f"{ns_name}: nftables refused the lab's port security: {error[:400]}")
    log.info("event=nft-loaded ns=%s lines=%d", ns_name, ruleset.count("\n"))
