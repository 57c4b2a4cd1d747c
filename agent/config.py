"""Agent configuration: a YAML/JSON file and/or command-line flags, validated up front."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from .addresses import IPNetwork
from .routes import MAX_VNI, RouteDistinguisher, RouteError, RouteTarget, is_number

_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")


class ConfigError(ValueError):
    """Invalid agent configuration; the message names the field and what is wrong."""


@dataclass(frozen=True)
class VniConfig:
    """One overlay served by this host: VNI -> vxlan device on a bridge, with its RD and RTs."""

    vni: int
    device: str
    bridge: str
    rd: RouteDistinguisher
    import_rts: frozenset[RouteTarget]
    export_rts: tuple[RouteTarget, ...]
    subnets: tuple[IPNetwork, ...] = ()  # the VMs' subnets: addresses outside are refused (empty: any)


@dataclass(frozen=True)
class AgentConfig:
    vtep: ipaddress.IPv4Address
    vnis: tuple[VniConfig, ...]
    gobgp_address: str = "127.0.0.1:50051"
    seed_prefix_vteps: bool = False  # opt-in: a Type-5 <vtep>/32 route (the seed's form) counts as a VTEP
    state_file: Path | None = None  # ownership ledger of the kernel entries this agent made
    status_file: Path | None = None  # JSON snapshot for operators and labctl
    batch_window: float = 0.05  # seconds to gather route events into one reconcile
    resync_interval: float = 60.0  # seconds between full kernel re-reads (self-heal)
    stale_settle: float = 1.0  # after (re)connecting: BGP up this long before stale entries go
    stale_timeout: float = 30.0  # ... or this long after (re)connecting, whatever the sessions do
    stale_withdraw_grace: float = 3.0  # seconds a withdrawal of a stale path waits for the route to come back (0: off)
    dad_max_moves: int = 5  # duplicate address detection (as FRR): more than this many moves of one MAC ...
    dad_window: float = 180.0  # ... within this many seconds freezes it (no more updates from this host)
    mac_limit_per_port: int = 64  # local MACs learned behind one bridge port at most (a MAC flood stops here)
    mac_limit_per_vni: int = 8192  # local MACs learned in one VNI at most
    vxlan_source_guard: bool = True  # nftables: VXLAN accepted only from VTEPs of the RIB (agent/vxlan_guard.py)
    metrics_address: str | None = None  # HOST:PORT for Prometheus /metrics (None: off)
    name: str = field(default="evpn-agent")

    def vni(self, vni: int) -> VniConfig | None:
        return self._by_vni.get(vni)

    @cached_property
    def _by_vni(self) -> dict[int, VniConfig]:
        return {v.vni: v for v in self.vnis}


_TOP_KEYS = {
    "gobgp_address", "vtep", "route_target_asn", "seed_prefix_vteps", "state_file",
    "status_file", "batch_window", "resync_interval", "stale_settle", "stale_timeout", "name", "vnis",
    "dad_max_moves", "dad_window", "mac_limit_per_port", "mac_limit_per_vni", "metrics_address",
    "vxlan_source_guard", "stale_withdraw_grace",
}
_VNI_KEYS = {"vni", "device", "bridge", "rd", "import_rts", "export_rts", "route_targets", "subnets"}


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping or mapping[key] in (None, ""):
        raise ConfigError(f"{where}.{key}: missing")
    return mapping[key]


def _check_keys(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _rts(values: Any, where: str) -> tuple[RouteTarget, ...]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: expected a list of route targets like ['65000:100']")
    try:
        return tuple(RouteTarget.parse(v) for v in values)
    except RouteError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _vni_config(raw: Any, index: int, vtep: ipaddress.IPv4Address, rt_asn: int | None) -> VniConfig:
    where = f"vnis[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with vni, device, bridge")
    _check_keys(raw, _VNI_KEYS, where)
    vni = _require(raw, "vni", where)
    if not isinstance(vni, int) or isinstance(vni, bool) or not 1 <= vni <= MAX_VNI:
        raise ConfigError(f"{where}.vni: {vni!r} is not a VNI (1..{MAX_VNI})")
    names = {}
    for key in ("device", "bridge"):
        name = str(_require(raw, key, where))
        if not _IFNAME_RE.match(name):
            raise ConfigError(f"{where}.{key}: {name!r} is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)")
        names[key] = name
    if "rd" in raw:
        try:
            rd = RouteDistinguisher.parse(str(raw["rd"]))
        except RouteError as exc:
            raise ConfigError(f"{where}.rd: {exc}") from exc
    elif vni <= 0xFFFF:
        rd = RouteDistinguisher.ip_based(vtep, vni)
    else:
        raise ConfigError(f"{where}.rd: VNI {vni} does not fit a type-1 RD's 16-bit number; set rd explicitly")
    both = raw.get("route_targets")
    if both is not None:
        imports = exports = _rts(both, f"{where}.route_targets")
    elif rt_asn is not None or ("import_rts" in raw and "export_rts" in raw):
        default = (RouteTarget(str(rt_asn), vni),) if rt_asn is not None else ()
        imports = _rts(raw["import_rts"], f"{where}.import_rts") if "import_rts" in raw else default
        exports = _rts(raw["export_rts"], f"{where}.export_rts") if "export_rts" in raw else default
    else:
        raise ConfigError(f"{where}: no route targets: set route_target_asn (RT = ASN:VNI) or import_rts/export_rts")
    return VniConfig(vni, names["device"], names["bridge"], rd, frozenset(imports), tuple(exports),
                     _subnets(raw.get("subnets", []), f"{where}.subnets"))


def _subnets(values: Any, where: str) -> tuple[IPNetwork, ...]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise ConfigError(f"{where}: expected a list of prefixes like ['192.168.100.0/24']")
    nets = []
    for value in values:
        try:
            net = ipaddress.ip_network(str(value), strict=True)
        except ValueError as exc:
            raise ConfigError(f"{where}: {value!r} is not a network prefix ({exc})") from exc
        if net.is_multicast or net.is_loopback or net.is_unspecified or net.is_link_local:
            raise ConfigError(f"{where}: {net} cannot hold VM addresses (multicast, loopback or link-local)")
        nets.append(net)
    return tuple(nets)


def parse_config(raw: Mapping[str, Any]) -> AgentConfig:
    """Validate a config mapping (from a file merged with flags) into an AgentConfig."""
    if not isinstance(raw, Mapping):
        raise ConfigError("config: expected a mapping at the top level")
    _check_keys(raw, _TOP_KEYS, "config")
    try:
        vtep = ipaddress.IPv4Address(str(_require(raw, "vtep", "config")))
    except ipaddress.AddressValueError as exc:
        raise ConfigError(f"config.vtep: {raw['vtep']!r} is not an IPv4 address") from exc
    rt_asn = raw.get("route_target_asn")
    if rt_asn is not None and (not isinstance(rt_asn, int) or isinstance(rt_asn, bool) or not 1 <= rt_asn <= 0xFFFF):
        raise ConfigError(f"config.route_target_asn: {rt_asn!r} must be a 2-octet AS number (1..65535)")
    raw_vnis = raw.get("vnis") or []
    if not isinstance(raw_vnis, list):
        raise ConfigError("config.vnis: expected a list")
    vnis = tuple(_vni_config(item, i, vtep, rt_asn) for i, item in enumerate(raw_vnis))
    seen: dict[str, int] = {}
    for v in vnis:
        for kind, value in (("vni", str(v.vni)), ("device", v.device)):
            if (kind, value) in seen:  # type: ignore[comparison-overlap]
                raise ConfigError(f"config.vnis: duplicate {kind} {value}")
            seen[(kind, value)] = v.vni  # type: ignore[index]
    address = str(raw.get("gobgp_address", "127.0.0.1:50051"))
    host, sep, port = address.rpartition(":")
    is_unix = address.startswith("unix:") and len(address) > len("unix:")
    if not is_unix and (not sep or not host or not is_number(port) or not 0 < int(port) < 65536):
        raise ConfigError(f"config.gobgp_address: {address!r} must be HOST:PORT or unix:/path")
    seed = raw.get("seed_prefix_vteps", False)
    if not isinstance(seed, bool):
        raise ConfigError(f"config.seed_prefix_vteps: {seed!r} must be true or false")
    guard = raw.get("vxlan_source_guard", True)
    if not isinstance(guard, bool):
        raise ConfigError(f"config.vxlan_source_guard: {guard!r} must be true or false")
    numbers = {}
    for key, default in (("batch_window", 0.05), ("resync_interval", 60.0), ("stale_settle", 1.0), ("stale_timeout", 30.0)):
        value = raw.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"config.{key}: {value!r} must be a positive number of seconds")
        numbers[key] = float(value)
    grace = raw.get("stale_withdraw_grace", 3.0)
    if not isinstance(grace, (int, float)) or isinstance(grace, bool) or not 0 <= grace <= 600:
        raise ConfigError(f"config.stale_withdraw_grace: {grace!r} must be 0 (off) to 600 seconds")
    numbers["stale_withdraw_grace"] = float(grace)
    moves = raw.get("dad_max_moves", 5)
    if not isinstance(moves, int) or isinstance(moves, bool) or moves < 1:
        raise ConfigError(f"config.dad_max_moves: {moves!r} must be a positive integer")
    window = raw.get("dad_window", 180.0)
    if not isinstance(window, (int, float)) or isinstance(window, bool) or window <= 0:
        raise ConfigError(f"config.dad_window: {window!r} must be a positive number of seconds")
    limits = {}
    for key, default in (("mac_limit_per_port", 64), ("mac_limit_per_vni", 8192)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"config.{key}: {value!r} must be a positive integer")
        limits[key] = value
    metrics = raw.get("metrics_address")
    if metrics is not None:
        metrics = str(metrics)
        m_host, m_sep, m_port = metrics.rpartition(":")
        if not m_sep or not m_host or not is_number(m_port) or not 0 < int(m_port) < 65536:
            raise ConfigError(f"config.metrics_address: {metrics!r} must be HOST:PORT, e.g. 127.0.0.1:9470")
    return AgentConfig(
        metrics_address=metrics,
        dad_max_moves=moves,
        **limits,
        dad_window=float(window),
        vtep=vtep,
        vnis=vnis,
        gobgp_address=address,
        seed_prefix_vteps=seed,
        vxlan_source_guard=guard,
        state_file=Path(raw["state_file"]) if raw.get("state_file") else None,
        status_file=Path(raw["status_file"]) if raw.get("status_file") else None,
        name=str(raw.get("name", "evpn-agent")),
        **numbers,
    )


def _parse_document(text: str) -> Any:
    """A JSON object as JSON (the lab writes JSON; PyYAML then stays unloaded: 1.5 MB of the agent's
    memory), anything else as YAML."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # YAML flow style, or broken: YAML says which
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(exc.__class__.__name__) from None


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        data = _parse_document(path.read_text())
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"config file {path}: not valid YAML/JSON ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return data
