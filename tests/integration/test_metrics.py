"""The agent's Prometheus endpoint in a real lab: scraped over HTTP inside a hypervisor's namespace
and checked against what the kernel holds and what gobgpd's RIB says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from agent.entries import ZERO_MAC
from agent.routes import ImetRoute, MacIpRoute
from labctl.lab import Lab
from labctl.observe import read_fdb, read_rib, wait_until
from labctl.plan import AGENT_METRICS

from .labkit import labctl, make_topology, write_topology

LAB = "itmetric"


def scrape(ns: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET http://AGENT_METRICS/metrics from inside namespace `ns` (the agent listens on its loopback)."""
    code = f"import urllib.request; print(urllib.request.urlopen('http://{AGENT_METRICS}/metrics', timeout=5).read().decode())"
    text = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=30).stdout
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_match_kernel_and_rib(tmp_path: Path) -> None:
    topo = write_topology(tmp_path / "lab.yaml", make_topology(LAB, hosts=3, vms_per_host=2))
    result = labctl("up", str(topo))
    assert result.returncode == 0, result.stdout + result.stderr
    assert labctl("verify", "--lab", LAB, "--only", "cross-host").returncode == 0  # every VM spoke: Type-2 routes exist
    lab = Lab.open(LAB)
    host = lab.topo.host(f"{LAB}-1")
    assert host is not None

    def consistent() -> bool:
        fdb = read_fdb(lab, host)
        rib = [e for e in read_rib(lab, host.name) if not e.local]
        m = scrape(host.name)
        flood = sum(1 for e in fdb if e.mac == ZERO_MAC)
        unicast = sum(1 for e in fdb if e.mac != ZERO_MAC)
        return (m.get(("evpn_agent_remote_vteps", (("vni", "100"),))) == flood == 2
                and m.get(("evpn_agent_desired_entries", (("kind", "mac"), ("vni", "100")))) == unicast == 4
                and m.get(("evpn_agent_routes", (("type", "imet"), ("vni", "100")))) == sum(isinstance(e.route, ImetRoute) for e in rib)
                and m.get(("evpn_agent_routes", (("type", "macip"), ("vni", "100")))) == sum(isinstance(e.route, MacIpRoute) for e in rib)
                and m.get(("evpn_agent_local_macs", (("vni", "100"),))) == 2
                and m.get(("evpn_agent_ready", ())) == 1 and m.get(("evpn_agent_gobgp_connected", ())) == 1)

    wait_until("metrics equal to kernel and RIB", consistent, 20)
    m = scrape(host.name)
    assert m[("evpn_agent_owned_entries", ())] >= 6
    assert m[("evpn_agent_malformed_routes_total", ())] == 0
    assert m[("evpn_agent_route_to_kernel_seconds_count", ())] >= 1
    assert labctl("down", LAB).returncode == 0
