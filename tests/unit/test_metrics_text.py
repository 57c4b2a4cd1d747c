"""agent/metrics.py writes the Prometheus text format itself: what it serves must read back, through
prometheus_client's own parser, as the snapshot and histogram it was given."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import LATENCY_BUCKETS, AgentMetrics, MetricsSnapshot


def _parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _metrics() -> AgentMetrics:
    metrics = AgentMetrics()
    metrics.publish(MetricsSnapshot(routes={("imet", 100): 2, ("macip", 100): 6}, entries={("mac", 100): 6},
                                    remote_vteps={100: 2}, owned_entries=8, local_macs={100: 3}, ready=True,
                                    connected=True, last_full_sync=1700000000.5, counters={"reconnects": 4}))
    for seconds in (0.004, 0.02, 0.02, 7.0, 100.0):
        metrics.route_to_kernel.observe(seconds)
    return metrics


def test_exposition_reads_back_as_the_snapshot() -> None:
    samples = _parsed(_metrics().exposition())
    assert samples[("evpn_agent_routes", (("type", "imet"), ("vni", "100")))] == 2
    assert samples[("evpn_agent_routes", (("type", "macip"), ("vni", "100")))] == 6
    assert samples[("evpn_agent_desired_entries", (("kind", "mac"), ("vni", "100")))] == 6
    assert samples[("evpn_agent_remote_vteps", (("vni", "100"),))] == 2
    assert samples[("evpn_agent_local_macs", (("vni", "100"),))] == 3
    assert samples[("evpn_agent_owned_entries", ())] == 8
    assert samples[("evpn_agent_ready", ())] == 1 and samples[("evpn_agent_gobgp_connected", ())] == 1
    assert samples[("evpn_agent_last_full_sync_timestamp_seconds", ())] == 1700000000.5
    assert samples[("evpn_agent_reconnects_total", ())] == 4
    assert samples[("evpn_agent_kernel_errors_total", ())] == 0


def test_histogram_buckets_are_cumulative() -> None:
    samples = _parsed(_metrics().exposition())
    name = "evpn_agent_route_to_kernel_seconds"
    assert samples[(f"{name}_count", ())] == 5
    assert samples[(f"{name}_sum", ())] == pytest.approx(107.044)
    assert samples[(f"{name}_bucket", (("le", "0.005"),))] == 1
    assert samples[(f"{name}_bucket", (("le", "0.025"),))] == 3
    assert samples[(f"{name}_bucket", (("le", "10.0"),))] == 4
    assert samples[(f"{name}_bucket", (("le", "+Inf"),))] == 5
    assert len([k for k in samples if k[0] == f"{name}_bucket"]) == len(LATENCY_BUCKETS) + 1


def test_get_sample_value_answers_as_a_registry_did() -> None:
    metrics = _metrics()
    assert metrics.registry.get_sample_value("evpn_agent_routes", {"type": "imet", "vni": "100"}) == 2
    assert metrics.registry.get_sample_value("evpn_agent_route_to_kernel_seconds_count") == 5
    assert metrics.registry.get_sample_value("evpn_agent_routes", {"type": "imet", "vni": "999"}) is None


def test_served_over_http() -> None:
    metrics = _metrics()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.serve(f"127.0.0.1:{port}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert _parsed(response.read().decode())[("evpn_agent_owned_entries", ())] == 8
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 405
    finally:
        metrics.close()
