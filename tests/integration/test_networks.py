"""Several overlays: the multitenant topology, isolation, per-VNI flood lists, attach/detach on a running lab."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from labctl.lab import Lab
from labctl.observe import read_fdb

from .labkit import labctl, lab_namespaces, repo_topology

LAB = "itmt"


def _flood(lab: Lab, host: str, device: str) -> set[str]:
    return {str(e.vtep) for e in read_fdb(lab, lab.topo.host(host)) if e.is_flood and e.device == device}  # type: ignore[arg-type]


def test_multitenant_isolation_and_attach_detach(tmp_path: Path) -> None:
    assert labctl("up", str(repo_topology("multitenant.yaml", LAB, tmp_path))).returncode == 0
    result = labctl("verify", "--lab", LAB)
    assert result.returncode == 0, result.stdout
    for claim in ("isolated at L2", "only the hypervisors that have its network", "exactly the two VTEPs"):
        assert claim in result.stdout
    lab = Lab.open(LAB)
    h1, h2, h3 = (h.name for h in lab.topo.hosts)
    # red (VNI 300) lives on hosts 1 and 2 only: nobody floods it to host 3, host 3 has no device for it
    assert _flood(lab, h1, "vxlan300") == {"10.0.0.102"} and _flood(lab, h2, "vxlan300") == {"10.0.0.101"}
    assert subprocess.run(["ip", "-n", h3, "link", "show", "vxlan300"], capture_output=True).returncode != 0

    # attach vm8 (host 3) to red: host 3 gets the devices, the others add it to their red flood list,
    # and nothing changes for the VNIs host 3 already served (watched with netlink while it happens)
    before = {e for e in read_fdb(lab, lab.topo.host(h3)) if e.device in ("vxlan100", "vxlan200")}  # type: ignore[arg-type]
    monitor = subprocess.Popen(["ip", "netns", "exec", h3, "bridge", "monitor", "fdb"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    attached = labctl("attach", "vm8", "red", "--ip", "192.168.30.38", "--lab", LAB)
    time.sleep(0.5)
    monitor.send_signal(signal.SIGTERM)
    seen, _ = monitor.communicate(timeout=5)
    assert attached.returncode == 0, attached.stdout + attached.stderr
    churn = [line for line in seen.splitlines() if ("vxlan100" in line or "vxlan200" in line) and "dst" in line]
    assert churn == [], churn
    lab = Lab.open(LAB)
    assert {e for e in read_fdb(lab, lab.topo.host(h3)) if e.device in ("vxlan100", "vxlan200")} == before  # type: ignore[arg-type]
    assert _flood(lab, h1, "vxlan300") == {"10.0.0.102", "10.0.0.103"}
    assert labctl("verify", "--lab", LAB).returncode == 0

    # detach vm10, the only red VM of host 1: host 1 loses its red devices, the others stop flooding red to it
    assert labctl("detach", "vm10", "--lab", LAB).returncode == 0
    lab = Lab.open(LAB)
    assert subprocess.run(["ip", "-n", h1, "link", "show", "vxlan300"], capture_output=True).returncode != 0
    assert _flood(lab, h2, "vxlan300") == {"10.0.0.103"}
    result = labctl("verify", "--lab", LAB)
    assert result.returncode == 0, result.stdout

    # bad input on a running lab: one line, nothing changed
    bad = labctl("attach", "vm2", "purple", "--lab", LAB)
    assert bad.returncode == 1 and "no network 'purple'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    clash = labctl("attach", "vm2", "red", "--ip", "192.168.30.11", "--lab", LAB)
    assert clash.returncode == 1 and "already used" in clash.stderr

    assert labctl("down", LAB).returncode == 0 and lab_namespaces(LAB) == []
