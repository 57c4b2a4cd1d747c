"""After an agent restart, our own MAC/IP routes that gobgpd kept give their addresses back to MACs that are
still local, so the agent does not withdraw them and wait for the VM's next ARP."""

from __future__ import annotations

from agent.advertiser import Advertiser
from agent.desired import RibView
from agent.entries import NeighEntry
from agent.learning import LocalLearning
from agent.localmacs import LocalMac
from agent.mactable import LocalMacTable
from agent.routes import RouteEvent
from tests.unit.builders import CFG, OWN, add, ip, macip, make_cfg

VM = LocalMac(100, "02:00:00:00:00:01")


def own(mac_ip: str, *, mac: str = VM.mac, vni: int = 100, rd: str | None = None, local: bool = True) -> RouteEvent:
    return RouteEvent(macip(OWN, vni, mac=mac, mac_ip=mac_ip, rd=rd or f"{OWN}:{vni}"), local=local)


def learning(cfg=CFG) -> LocalLearning:  # type: ignore[no-untyped-def]
    rib = RibView(cfg)
    result = LocalLearning(cfg, rib, Advertiser(cfg), LocalMacTable())
    result.adopt({VM: 3})
    return result


def test_an_address_of_a_local_mac_is_kept_and_advertised_again() -> None:
    lrn = learning()
    stale_claim = NeighEntry("br100", ip("192.0.2.10"), "02:00:00:00:00:77")
    lrn.rib.apply([add(macip("10.0.0.2", mac=stale_claim.mac, mac_ip="192.0.2.10"))])
    assert stale_claim in lrn.rib.desired()
    lrn.readopt_ips([own("192.0.2.10")])
    assert lrn.table.ips_of(VM) == [ip("192.0.2.10")]
    assert own("192.0.2.10").route.key in lrn.advertiser.wanted(lrn.table)
    # the address is local again: this host no longer answers ARP for it with the remote claim's MAC
    assert stale_claim not in lrn.rib.desired()


def test_routes_that_are_not_ours_or_not_local_are_not_taken() -> None:
    lrn = learning()
    events = [
        own("192.0.2.11", mac="02:00:00:00:00:99"),  # MAC not behind our bridges any more
        own("192.0.2.12", local=False),  # learned from a peer, not originated here
        RouteEvent(macip("10.0.0.2", 100, mac=VM.mac, mac_ip="192.0.2.13"), local=True),  # another VTEP
        own("192.0.2.14", rd="10.0.0.1:999"),  # not the RD we advertise the VNI with
        own("192.0.2.15", vni=300),  # a VNI we do not serve
        RouteEvent(own("192.0.2.16").route, withdrawn=True, local=True),
        own("224.0.0.1"),  # an address a VM may not have
    ]
    lrn.readopt_ips(events)
    assert lrn.table.ips_of(VM) == []


def test_an_address_outside_the_vni_subnets_is_not_taken() -> None:
    cfg = make_cfg(vnis=[{"vni": 100, "device": "vx100", "bridge": "br100", "subnets": ["192.0.2.0/24"]}])
    lrn = learning(cfg)
    lrn.readopt_ips([own("198.51.100.7"), own("192.0.2.7")])
    assert lrn.table.ips_of(VM) == [ip("192.0.2.7")]


def test_taking_an_address_back_twice_changes_nothing() -> None:
    other = LocalMac(100, "02:00:00:00:00:02")
    lrn = learning()
    lrn.adopt({other: 4})
    lrn.readopt_ips([own("192.0.2.20", mac=other.mac)])
    lrn.readopt_ips([own("192.0.2.20", mac=other.mac)])  # twice: nothing new the second time
    assert lrn.table.ips_of(other) == [ip("192.0.2.20")] and lrn.table.ips_of(VM) == []
