"""The session loop drives the VXLAN source guard (agent/vxlan_guard.py): installed at once with the
table's VTEPs, then following the flood lists after route changes, coalesced to at most one `nft` run
per GUARD_INTERVAL however many batches bring new VTEPs. Real Agent, RIB and guard; the nft runner
records the documents it is given instead of running nft."""

from __future__ import annotations

import json
import math
import time

from agent.service import GUARD_INTERVAL, Agent
from agent.vxlan_guard import VxlanGuard
from tests.unit.builders import CFG, add, imet, macip
from tests.unit.test_service import FakeGobgp, Kernel, Running, wait_for


class Nft:
    """Records each nft document as the set of VTEPs it adds and removes."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, set[str], set[str]]] = []

    def __call__(self, document: str) -> str:
        added: set[str] = set()
        removed: set[str] = set()
        for item in json.loads(document)["nftables"]:
            for verb, target in ((v, item[v]) for v in ("add", "delete") if v in item):
                if "element" in target:
                    (added if verb == "add" else removed).update(target["element"]["elem"])
        self.runs.append((time.monotonic(), added, removed))
        return ""

    def allowed(self) -> set[str]:
        allowed: set[str] = set()
        for _, added, removed in self.runs:
            allowed = (allowed - removed) | added
        return allowed


def test_installed_at_once_then_new_vteps_coalesced() -> None:
    gobgp = FakeGobgp([add(imet("10.0.0.2", 100))])
    nft = Nft()
    agent = Agent(CFG, Kernel(), client_factory=lambda _: gobgp, worker_factory=lambda *_: [],  # type: ignore[arg-type,return-value]
                  vxlan_guard=VxlanGuard(runner=nft))
    with Running(agent):
        wait_for("the guard installed", lambda: bool(nft.runs))
        assert nft.allowed() == {"10.0.0.2"}
        start = time.monotonic()
        vteps = [f"10.0.0.{n}" for n in range(3, 9)]
        for vtep in vteps:  # one batch each (further apart than the batch window)
            gobgp.stream.put([add(imet(vtep, 100))])
            time.sleep(CFG.batch_window + 0.02)
        spread = time.monotonic() - start
        wait_for("every new VTEP allowed", lambda: nft.allowed() == {"10.0.0.2", *vteps}, timeout=5)
        updates = [at for at, _, _ in nft.runs[1:]]
        assert len(updates) <= math.ceil(spread / GUARD_INTERVAL) + 1, (len(updates), spread)  # not one per batch
        assert all(b - a >= GUARD_INTERVAL * 0.9 for a, b in zip([nft.runs[0][0], *updates], updates)), updates
        time.sleep(GUARD_INTERVAL * 2)  # any update still due is done
        runs = len(nft.runs)
        gobgp.stream.put([add(macip("10.0.0.3", mac="02:00:00:00:00:33", seq=1))])  # no new VTEP: no nft run
        time.sleep(GUARD_INTERVAL * 2)
        gobgp.stream.put([add(imet("10.0.0.3", 200))])  # a known VTEP in another VNI: the set stays as it is
        time.sleep(GUARD_INTERVAL * 2)
        assert len(nft.runs) == runs and nft.allowed() == {"10.0.0.2", *vteps}
        assert agent.health.ready
