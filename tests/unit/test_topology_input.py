"""Topology files are input: whatever they hold, `check` and `up` answer with one line naming the field,
and `check` refuses everything `up` would fail on."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from click.testing import CliRunner

from labctl.cli import main
from labctl.errors import TopologyError
from labctl.topology import MAX_HOSTS, check_lab_name, load_topology, parse_topology
from tests.unit.labctl_builders import make_topology, two_networks

GOOD = make_topology("t", hosts=2, vms_per_host=2)


def _edited(edit: Callable[[dict[str, Any]], None], base: dict[str, Any] = GOOD) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    edit(doc)
    return doc


def _refused(doc: Any, field: str) -> str:
    with pytest.raises(TopologyError) as caught:
        parse_topology(doc, "lab.yaml")
    message = str(caught.value)
    assert "\n" not in message and f"lab.yaml: {field}" in message, message
    return message


@pytest.mark.parametrize("address", ["0.0.0.0", "127.0.0.1", "224.0.0.5", "169.254.1.1", "255.255.255.255", "8.8.8.8"])
def test_controller_address_must_be_private_unicast(address: str) -> None:
    _refused(_edited(lambda d: d["controller"].update(address=address)), "controller.address")


def test_vni_must_fit_the_route_distinguisher() -> None:
    message = _refused(_edited(lambda d: d["networks"][0].update(vni=70000)), "networks[0].vni")
    assert "65535" in message


@pytest.mark.parametrize("rt", ["65000:4294967296", "70000:70000", "4294967296:1"])
def test_route_targets_out_of_range(rt: str) -> None:
    _refused(_edited(lambda d: d["networks"][0].update(route_targets=[rt])), "networks[0].route_targets")


def test_default_route_target_of_a_four_byte_controller_as_must_fit() -> None:
    doc = _edited(lambda d: d["controller"].update(asn=4200000000))
    assert parse_topology(doc).networks[0].route_targets == ("4200000000:100",)  # VNI 100 fits 16 bits
    _refused(_edited(lambda d: d["networks"][0].update(vni=65535, route_targets=["4200000000:65536"]), doc), "networks[0].route_targets")


@pytest.mark.parametrize("bridge", ["uplink", "lo", "vxlan200", "vxlan100"])
def test_bridge_may_not_take_an_interface_name_of_the_lab(bridge: str) -> None:
    _refused(_edited(lambda d: d["networks"][0].update(bridge=bridge)), "networks[0].bridge")


def test_vm_name_equal_to_a_later_hosts_suffix() -> None:
    doc = _edited(lambda d: d["hosts"][0]["vms"][0].update(name="n2"))
    doc["hosts"][1]["name"] = "t-n2"
    _refused(doc, "hosts[0].vms[0].name")


@pytest.mark.parametrize("vm", ["controller", "underlay"])
def test_vm_named_like_a_lab_node(vm: str) -> None:
    _refused(_edited(lambda d: d["hosts"][0]["vms"][0].update(name=vm)), "hosts[0].vms[0].name")


@pytest.mark.parametrize("subnet", ["224.1.0.0/24", "169.254.0.0/24", "127.0.0.0/24", "240.0.0.0/24", "0.0.0.0/24"])
def test_network_subnet_must_be_unicast(subnet: str) -> None:
    _refused(_edited(lambda d: d["networks"][0].update(subnet=subnet)), "networks[0].subnet")


@pytest.mark.parametrize("links", ["224.0.0.0/16", "169.254.0.0/16", "127.0.0.0/16"])
def test_underlay_links_must_be_unicast(links: str) -> None:
    _refused(_edited(lambda d: d.update(underlay={"links": links})), "underlay.links")


def test_the_frr_bridge_address_is_kept_free() -> None:
    _refused(_edited(lambda d: d["hosts"][0]["vms"][0].update(ip="192.168.100.254")), "hosts[0].vms[0].ip")


def test_host_limit_is_said() -> None:
    doc = make_topology("t", hosts=1, vms_per_host=0)
    doc["hosts"] = [{"name": f"t-{i}", "asn": 66000 + i, "vtep": f"10.1.{i // 250}.{i % 250 + 1}"} for i in range(5000)]
    message = _refused(doc, "hosts")
    assert f"at most {MAX_HOSTS}" in message


def test_vm_limit_is_said() -> None:
    doc = make_topology("t", hosts=2, vms_per_host=0)
    doc["networks"][0]["subnet"] = "10.128.0.0/16"
    doc["hosts"][0]["vms"] = [{"name": f"v{i}", "mac": f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", "ip": f"10.128.{i // 250}.{i % 250 + 1}"}
                              for i in range(600)]
    _refused(doc, "hosts[0].vms")


@pytest.mark.parametrize(("value", "field"), [
    (["a", "b"], "lab"), ({"x": 1}, "controller.address"), (12345, "hosts[0].vtep"), ("10.0.0.0/8", "controller.address"),
])
def test_wrong_types_are_one_line(value: Any, field: str) -> None:
    def edit(d: dict[str, Any]) -> None:
        if field == "lab":
            d["lab"] = value
        elif field == "controller.address":
            d["controller"]["address"] = value
        else:
            d["hosts"][0]["vtep"] = value

    _refused(_edited(edit), field)


def test_unquoted_mac_read_as_a_number_says_to_quote_it() -> None:
    assert "quotes" in _refused(_edited(lambda d: d["hosts"][0]["vms"][0].update(mac=1234)), "hosts[0].vms[0].mac")


def test_a_newline_in_a_key_stays_on_one_line() -> None:
    _refused(_edited(lambda d: d.update({"evil\nkey": 1})), "'evil\\nkey'")


# -- the file -----------------------------------------------------------------------------------


def _file(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _load_refused(path: Path, expect: str) -> str:
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    message = str(caught.value)
    assert "\n" not in message and expect in message, message
    return message


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9))


def test_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    start = time.monotonic()
    _load_refused(_file(tmp_path, ALIAS_BOMB), "anchors")
    assert time.monotonic() - start < 1


def test_aliases_are_refused_even_small(tmp_path: Path) -> None:
    doc = yaml.safe_dump(GOOD).replace("bgp:", "bgp: &timers", 1) + "x: *timers\n"
    _load_refused(_file(tmp_path, doc), "not valid YAML")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump(GOOD, sort_keys=False).replace("lab: t\n", "lab: t\nlab: u\n", 1)
    assert "duplicate key 'lab'" in _load_refused(_file(tmp_path, text), "line 2")


def test_binary_and_latin1_files_are_one_line(tmp_path: Path) -> None:
    _load_refused(_file(tmp_path, bytes(range(256))), "not UTF-8")
    _load_refused(_file(tmp_path, "lab: caf\xe9\n".encode("latin-1")), "not UTF-8")


def test_control_characters_are_one_line(tmp_path: Path) -> None:
    _load_refused(_file(tmp_path, "lab: a\x07b\n"), "not valid YAML")


def test_deep_nesting_is_one_line(tmp_path: Path) -> None:
    _load_refused(_file(tmp_path, "[" * 5000 + "]" * 5000), "lab.yaml")


def test_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    _load_refused(_file(tmp_path, "# " + "x" * 400_000 + "\n"), "larger than")


def test_the_repository_topologies_still_load() -> None:
    root = Path(__file__).resolve().parents[2] / "topologies"
    for path in root.glob("*.yaml"):
        load_topology(path)


def test_check_refuses_with_one_line_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_edited(lambda d: d["networks"][0].update(bridge="uplink"))))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 1 and "networks[0].bridge" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


@pytest.mark.parametrize("name", ["/tmp/x", "..", "", ".", "a-b", "Evpn", "toolongname", "evpn\n", "a/b", 7])
def test_lab_names_follow_the_topology_rule(name: Any) -> None:
    with pytest.raises(TopologyError, match="lab name"):
        check_lab_name(name)


def test_two_network_builder_is_valid() -> None:
    assert len(parse_topology(two_networks()).networks) == 2
