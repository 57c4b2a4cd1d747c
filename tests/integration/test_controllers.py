"""Two controllers, both gobgpd or gobgpd + FRR's bgpd (topologies/3x3-2ctl*.yaml): every host peers with
both, and one of them dying (kill -9 of its daemon, restarted by its supervisor, or `labctl kill` for good)
loses no packet of a 10 ms cross-host ping and no route on any host (every host's RIB sampled every 0.1 s
throughout). Measured loss and times are in every assertion message."""

from __future__ import annotations

import signal
from pathlib import Path

from labctl import observe
from labctl.faults import FaultResult, controller_kill_measured, restart_measured
from labctl.lab import Lab
from labctl.topology import load_topology
from labctl.verify import run_checks

from .labkit import repo_topology

CONVERGED_WITHIN = 10.0  # seconds from a daemon's kill to the fabric converged again


def up(name: str, lab: str, tmp_path: Path) -> Lab:
    path = repo_topology(name, lab, tmp_path)
    return Lab.up(load_topology(path), str(path))


def lossless(result: FaultResult) -> None:
    print(result.line())  # the measured figures (pytest -s shows them)
    assert result.outage.lost_ms == 0 and result.outage.sent > 100, f"traffic lost: {result.line()}"
    assert not any(result.withdrawn.values()), f"a host lost a route: {result.line()}"


def both_controllers_learned_everything(lab: Lab) -> None:
    results = run_checks(lab, only=("rib-",))
    assert [r.ok for r in results] == [True, True], "; ".join(f"{r.id}: {r.evidence}" for r in results)


def test_two_gobgpd_controllers_one_restarted_then_one_killed_loses_nothing(tmp_path: Path) -> None:
    lab = up("3x3-2ctl.yaml", "itfa2c", tmp_path)
    both_controllers_learned_everything(lab)
    restarted = restart_measured(lab, "controller", "gobgpd", signal.SIGKILL)
    lossless(restarted)
    assert restarted.recovered <= CONVERGED_WITHIN, f"converged after {restarted.recovered:.2f}s: {restarted.line()}"
    killed = controller_kill_measured(lab, "controller2")  # for good: hold timer, then the GR time, then forgotten
    lossless(killed)
    assert observe.converged(lab, lab.hosts_alive()), "hosts not converged on the one controller left"
    assert lab.revive("controller2") <= CONVERGED_WITHIN + 5
    both_controllers_learned_everything(lab)


def test_gobgpd_and_frr_controllers_either_restarted_loses_nothing(tmp_path: Path) -> None:
    lab = up("3x3-2ctl-frr.yaml", "itfafrr", tmp_path)
    both_controllers_learned_everything(lab)  # FRR's hub passed every VTEP on as the next hop
    for node, daemon in (("controller2", "bgpd"), ("controller", "gobgpd")):
        result = restart_measured(lab, node, daemon, signal.SIGKILL)
        lossless(result)
        assert result.recovered <= CONVERGED_WITHIN, f"converged after {result.recovered:.2f}s: {result.line()}"
    both_controllers_learned_everything(lab)
