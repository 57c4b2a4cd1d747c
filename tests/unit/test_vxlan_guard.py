"""Unit tests for agent/vxlan_guard.py: the pure part (sources, diffs, nft JSON) and VxlanGuard with a fake nft."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from agent.config import ConfigError, parse_config
from agent.vxlan_guard import (
    CHAIN,
    SET_V4,
    SET_V6,
    TABLE,
    SetChange,
    VxlanGuard,
    VxlanGuardError,
    allowed_sources,
    diff,
    document,
    dropped_packets,
    install_commands,
    update_commands,
)

A, B, C = (ipaddress.ip_address(x) for x in ("10.0.0.2", "10.0.0.3", "10.0.0.4"))
V6 = ipaddress.ip_address("fd00::7")


def test_allowed_sources_are_every_remote_vtep_of_every_vni() -> None:
    assert allowed_sources({100: ["10.0.0.2", "10.0.0.3"], 200: ["10.0.0.3", "fd00::7"], 300: []}) == {A, B, V6}
    assert allowed_sources({}) == frozenset()


def test_diff_names_what_comes_and_what_goes() -> None:
    change = diff(frozenset({A, B}), frozenset({B, C}))
    assert change == SetChange(frozenset({C}), frozenset({A}))
    assert not diff(frozenset({A}), frozenset({A}))


def _verbs(commands: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(verb, next(iter(body))) for c in commands for verb, body in c.items()]


def test_install_is_one_transaction_that_creates_empties_and_refills() -> None:
    commands = install_commands({A, V6})
    assert _verbs(commands) == [("add", "table"), ("add", "chain"), ("add", "set"), ("add", "set"),
                                ("flush", "chain"), ("flush", "set"), ("flush", "set"),
                                ("add", "rule"), ("add", "rule"), ("add", "element"), ("add", "element")]
    chain = commands[1]["add"]["chain"]
    assert (chain["table"], chain["name"], chain["hook"], chain["policy"]) == (TABLE, CHAIN, "input", "accept")
    v4_rule = commands[7]["add"]["rule"]["expr"]
    assert v4_rule[0]["match"] == {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": f"@{SET_V4}"}
    assert v4_rule[1]["match"]["right"] == 4789
    assert {"counter": None} in v4_rule and v4_rule[-1] == {"drop": None}
    assert commands[8]["add"]["rule"]["expr"][0]["match"]["right"] == f"@{SET_V6}"
    assert commands[9]["add"]["element"] == {"family": "inet", "table": TABLE, "name": SET_V4, "elem": ["10.0.0.2"]}
    assert commands[10]["add"]["element"]["elem"] == ["fd00::7"]


def test_install_without_sources_drops_all_vxlan_and_sends_no_empty_element_list() -> None:
    assert ("add", "element") not in _verbs(install_commands(set()))


def test_update_deletes_then_adds_per_address_family() -> None:
    commands = update_commands(SetChange(frozenset({C, V6}), frozenset({A})))
    assert commands == [
        {"delete": {"element": {"family": "inet", "table": TABLE, "name": SET_V4, "elem": ["10.0.0.2"]}}},
        {"add": {"element": {"family": "inet", "table": TABLE, "name": SET_V4, "elem": ["10.0.0.4"]}}},
        {"add": {"element": {"family": "inet", "table": TABLE, "name": SET_V6, "elem": ["fd00::7"]}}},
    ]


def test_document_is_nft_json_with_metainfo() -> None:
    doc = json.loads(document(update_commands(SetChange(frozenset({A}), frozenset()))))
    assert doc["nftables"][0] == {"metainfo": {"json_schema_version": 1}}
    assert len(doc["nftables"]) == 2


class FakeNft:
    def __init__(self, fail_updates: bool = False) -> None:
        self.docs: list[list[dict[str, Any]]] = []
        self.fail_updates = fail_updates

    def __call__(self, doc: str) -> str:
        commands = json.loads(doc)["nftables"][1:]
        self.docs.append(commands)
        if self.fail_updates and commands and "table" not in commands[0].get("add", {}):
            raise VxlanGuardError("VXLAN source guard: nft failed: No such file or directory")
        return ""


def test_guard_installs_whole_then_follows_by_diffs_and_is_quiet_when_nothing_changed() -> None:
    nft = FakeNft()
    guard = VxlanGuard(runner=nft)
    guard.follow({100: ["10.0.0.2"]})
    guard.follow({100: ["10.0.0.2"]})
    guard.follow({100: ["10.0.0.3"], 200: ["10.0.0.2"]})
    assert len(nft.docs) == 2
    assert nft.docs[0] == install_commands({A})
    assert nft.docs[1] == update_commands(SetChange(frozenset({B}), frozenset()))
    assert guard.applied == {A, B}


def test_guard_installs_whole_again_when_a_diff_fails() -> None:
    nft = FakeNft(fail_updates=True)
    guard = VxlanGuard(runner=nft)
    guard.follow({100: ["10.0.0.2"]})
    guard.follow({100: ["10.0.0.3"]})
    assert nft.docs[-1] == install_commands({B})
    assert guard.applied == {B}


def test_admit_only_adds_in_one_transaction_and_is_quiet_when_already_allowed() -> None:
    nft = FakeNft()
    guard = VxlanGuard(runner=nft)
    with pytest.raises(RuntimeError, match="before the table was installed"):
        guard.admit({B})  # this process does not know the set yet: it would drop what a previous agent allowed
    assert not nft.docs
    guard.follow({100: ["10.0.0.2", "10.0.0.3"]})
    guard.admit({C, V6, B})
    guard.admit({C})
    assert len(nft.docs) == 2
    assert nft.docs[1] == update_commands(SetChange(frozenset({C, V6}), frozenset()))
    assert guard.applied == {A, B, C, V6}


def test_admit_installs_whole_again_when_its_diff_fails() -> None:
    nft = FakeNft(fail_updates=True)
    guard = VxlanGuard(runner=nft)
    guard.follow({100: ["10.0.0.2"]})
    guard.admit({B})
    assert nft.docs[-1] == install_commands({A, B})
    assert guard.applied == {A, B}


def test_guard_failure_is_an_agent_failure_with_the_way_out() -> None:
    def broken(doc: str) -> str:
        raise VxlanGuardError("VXLAN source guard: the nft program is missing (install Debian's 'nftables' package, "
                              "or set vxlan_source_guard: false)")

    guard = VxlanGuard(runner=broken)
    with pytest.raises(VxlanGuardError, match="vxlan_source_guard: false"):
        guard.follow({100: ["10.0.0.2"]})
    assert guard.applied is None


def test_dropped_packets_sums_the_guard_rules_counters() -> None:
    listing = {"nftables": [
        {"metainfo": {}},
        {"rule": {"chain": CHAIN, "expr": [{"match": {}}, {"counter": {"packets": 3, "bytes": 300}}, {"drop": None}]}},
        {"rule": {"chain": CHAIN, "expr": [{"counter": {"packets": 2, "bytes": 10}}]}},
        {"rule": {"chain": "other", "expr": [{"counter": {"packets": 100, "bytes": 1}}]}},
    ]}
    assert dropped_packets(listing) == 5


def test_config_guard_is_on_by_default_and_must_be_a_boolean() -> None:
    raw: dict[str, Any] = {"vtep": "10.0.0.1"}
    assert parse_config(raw).vxlan_source_guard is True
    assert parse_config(raw | {"vxlan_source_guard": False}).vxlan_source_guard is False
    with pytest.raises(ConfigError, match="vxlan_source_guard"):
        parse_config(raw | {"vxlan_source_guard": "no"})
