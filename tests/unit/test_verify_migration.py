"""verify's migration judgement (pure): every host's FDB follows the VM, and no live controller, not only the
first, still holds the old host's route for it."""

from __future__ import annotations

import ipaddress

from agent.entries import FdbEntry
from labctl.verify import _migration_problems
from tests.unit.labctl_builders import mac_event, topology

TOPO = topology("t", hosts=3, vms_per_host=1)
SOURCE, TARGET, WATCHER = TOPO.hosts
VM = SOURCE.vms[0]
FOLLOWED = {WATCHER.name: {FdbEntry("vxlan100", VM.mac, ipaddress.ip_address(str(TARGET.vtep)))}}


def test_a_second_controller_still_holding_the_old_route_is_a_problem() -> None:
    old = mac_event(str(SOURCE.vtep), 100, VM.mac)
    new = mac_event(str(TARGET.vtep), 100, VM.mac, seq=1)
    problems = _migration_problems(VM, SOURCE, TARGET, FOLLOWED, {"controller": [new], "controller2": [old, new]})
    assert problems == [f"controller2 still has {SOURCE.name}'s route for {VM.mac}"]


def test_every_controller_clean_and_every_fdb_following_is_no_problem() -> None:
    new = mac_event(str(TARGET.vtep), 100, VM.mac, seq=1)
    assert _migration_problems(VM, SOURCE, TARGET, FOLLOWED, {"controller": [new], "controller2": [new]}) == []


def test_a_host_pointing_elsewhere_is_named() -> None:
    stale = {WATCHER.name: {FdbEntry("vxlan100", VM.mac, ipaddress.ip_address(str(SOURCE.vtep)))}}
    problems = _migration_problems(VM, SOURCE, TARGET, stale, {"controller": []})
    assert problems == [f"{WATCHER.name} points {VM.mac} at ['{SOURCE.vtep}']"]
