"""Unit tests for agent/config.py: parse_config validation, defaults, and error messages."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig, ConfigError, load_config_file, parse_config
from agent.routes import MAX_VNI, RouteDistinguisher, RouteTarget


def base(**top: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "vtep": "10.0.0.1",
        "route_target_asn": 65000,
        "vnis": [{"vni": 100, "device": "vxlan100", "bridge": "br100"}],
    }
    raw.update(top)
    return raw


def with_vni(**fields: Any) -> dict[str, Any]:
    raw = base()
    raw["vnis"][0].update(fields)
    return raw


def error_of(raw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return str(info.value)


# -- a valid config and its defaults -------------------------------------------------


def test_minimal_config_defaults() -> None:
    cfg = parse_config(base())
    assert isinstance(cfg, AgentConfig)
    assert cfg.vtep == ipaddress.IPv4Address("10.0.0.1")
    assert cfg.gobgp_address == "127.0.0.1:50051"
    assert cfg.seed_prefix_vteps is False
    assert cfg.state_file is None and cfg.status_file is None
    assert cfg.batch_window == 0.05 and cfg.resync_interval == 60.0
    assert cfg.name == "evpn-agent"
    (vni,) = cfg.vnis
    assert (vni.vni, vni.device, vni.bridge) == (100, "vxlan100", "br100")
    # default RD = vtep:vni (type 1), default RTs = route_target_asn:vni for import and export
    assert vni.rd == RouteDistinguisher("10.0.0.1:100")
    assert vni.import_rts == frozenset({RouteTarget("65000", 100)})
    assert vni.export_rts == (RouteTarget("65000", 100),)
    assert cfg.vni(100) is vni
    assert cfg.vni(200) is None


def test_parse_does_not_mutate_input() -> None:
    raw = base(vnis=[{"vni": 100, "device": "vxlan100", "bridge": "br100", "route_targets": "65000:1"}])
    before = copy.deepcopy(raw)
    parse_config(raw)
    assert raw == before


def test_full_config() -> None:
    cfg = parse_config(
        {
            "vtep": "192.0.2.10",
            "gobgp_address": "[::1]:50052",
            "seed_prefix_vteps": True,
            "state_file": "/var/lib/evpn/owned.json",
            "status_file": "/run/evpn/status.json",
            "batch_window": 1,
            "resync_interval": 5.5,
            "name": "host-a",
            "vnis": [
                {"vni": 10, "device": "vx-10", "bridge": "br0", "rd": "65001:10", "route_targets": ["65001:10", "10.9.9.9:10"]},
                {"vni": 20, "device": "vx.20", "bridge": "br0", "import_rts": ["65001:20", "65001:21"], "export_rts": "65001:20"},
            ],
        }
    )
    assert cfg.gobgp_address == "[::1]:50052"
    assert cfg.seed_prefix_vteps is True
    assert cfg.state_file == Path("/var/lib/evpn/owned.json")
    assert cfg.status_file == Path("/run/evpn/status.json")
    assert cfg.batch_window == 1.0 and isinstance(cfg.batch_window, float)
    assert cfg.resync_interval == 5.5
    assert cfg.name == "host-a"
    v10, v20 = cfg.vnis
    assert v10.rd == RouteDistinguisher("65001:10")
    assert v10.import_rts == frozenset({RouteTarget("65001", 10), RouteTarget("10.9.9.9", 10)})
    assert v10.export_rts == (RouteTarget("65001", 10), RouteTarget("10.9.9.9", 10))
    assert v20.rd == RouteDistinguisher("192.0.2.10:20")
    assert v20.import_rts == frozenset({RouteTarget("65001", 20), RouteTarget("65001", 21)})
    assert v20.export_rts == (RouteTarget("65001", 20),)
    assert cfg.vni(20) is v20


def test_route_target_asn_default_fills_only_the_missing_side() -> None:
    cfg = parse_config(with_vni(import_rts=["65001:7"]))
    (v,) = cfg.vnis
    assert v.import_rts == frozenset({RouteTarget("65001", 7)})
    assert v.export_rts == (RouteTarget("65000", 100),)
    cfg = parse_config(with_vni(export_rts=["65001:7"]))
    (v,) = cfg.vnis
    assert v.import_rts == frozenset({RouteTarget("65000", 100)})
    assert v.export_rts == (RouteTarget("65001", 7),)


def test_route_targets_key_overrides_asn_default() -> None:
    (v,) = parse_config(with_vni(route_targets="65001:1")).vnis
    assert v.import_rts == frozenset({RouteTarget("65001", 1)})
    assert v.export_rts == (RouteTarget("65001", 1),)


def test_import_and_export_without_asn() -> None:
    raw = base(vnis=[{"vni": 5, "device": "vx5", "bridge": "br5", "import_rts": ["1:5"], "export_rts": ["1:5"]}])
    del raw["route_target_asn"]
    (v,) = parse_config(raw).vnis
    assert v.import_rts == frozenset({RouteTarget("1", 5)})


def test_default_rt_for_large_vni_fits_two_octet_asn() -> None:
    (v,) = parse_config(with_vni(vni=MAX_VNI, rd="65000:1")).vnis
    assert v.import_rts == frozenset({RouteTarget("65000", MAX_VNI)})


def test_no_vnis_is_allowed() -> None:
    assert parse_config({"vtep": "10.0.0.1"}).vnis == ()
    assert parse_config({"vtep": "10.0.0.1", "vnis": None}).vnis == ()
    assert parse_config({"vtep": "10.0.0.1", "vnis": []}).vnis == ()


def test_vni_and_device_namespaces_are_separate() -> None:
    # vni 100's device is called "200" and vni 200's device "100": no duplicate of either kind
    raw = base(
        vnis=[
            {"vni": 100, "device": "200", "bridge": "br"},
            {"vni": 200, "device": "100", "bridge": "br"},
        ]
    )
    assert [v.vni for v in parse_config(raw).vnis] == [100, 200]


def test_shared_bridge_is_allowed() -> None:
    raw = base(vnis=[{"vni": 1, "device": "vx1", "bridge": "br0"}, {"vni": 2, "device": "vx2", "bridge": "br0"}])
    assert [v.bridge for v in parse_config(raw).vnis] == ["br0", "br0"]


@pytest.mark.parametrize("address", ["127.0.0.1:1", "localhost:65535", "gobgp.example:50051", "[::1]:50051"])
def test_gobgp_address_valid(address: str) -> None:
    assert parse_config(base(gobgp_address=address)).gobgp_address == address


# -- errors: each names the field ---------------------------------------------------------


@pytest.mark.parametrize("raw", [None, [], "vtep: 1", 5])
def test_top_level_not_a_mapping(raw: Any) -> None:
    assert error_of(raw).startswith("config:")


def test_unknown_top_level_key() -> None:
    message = error_of(base(vtpe="10.0.0.1"))
    assert message.startswith("config: unknown key 'vtpe'")
    assert "vtep" in message  # lists the allowed keys


def test_unknown_vni_key() -> None:
    message = error_of(with_vni(devcie="x"))
    assert message.startswith("vnis[0]: unknown key 'devcie'")


@pytest.mark.parametrize("vtep", [None, ""])
def test_vtep_missing(vtep: Any) -> None:
    assert error_of(base(vtep=vtep)) == "config.vtep: missing"
    raw = base()
    del raw["vtep"]
    assert error_of(raw) == "config.vtep: missing"


@pytest.mark.parametrize("vtep", ["bogus", "10.0.0.256", "2001:db8::1", "10.0.0.1/32", 167772161, "10.0.0"])
def test_vtep_invalid(vtep: Any) -> None:
    assert error_of(base(vtep=vtep)).startswith("config.vtep:")


@pytest.mark.parametrize("asn", [0, 65536, -1, True, "65000", 1.5])
def test_route_target_asn_invalid(asn: Any) -> None:
    assert error_of(base(route_target_asn=asn)).startswith("config.route_target_asn:")


@pytest.mark.parametrize("vnis", ["vni100", {"vni": 100}, 100])
def test_vnis_not_a_list(vnis: Any) -> None:
    assert error_of(base(vnis=vnis)) == "config.vnis: expected a list"


@pytest.mark.parametrize("item", ["100:vx:br", 100, None, ["vni", 100]])
def test_vni_item_not_a_mapping(item: Any) -> None:
    raw = base()
    raw["vnis"].append(item)
    assert error_of(raw).startswith("vnis[1]:")


@pytest.mark.parametrize("vni", [None, ""])
def test_vni_missing(vni: Any) -> None:
    assert error_of(with_vni(vni=vni)) == "vnis[0].vni: missing"


@pytest.mark.parametrize("vni", [0, -1, MAX_VNI + 1, True, False, "100", 100.0])
def test_vni_invalid(vni: Any) -> None:
    assert error_of(with_vni(vni=vni)).startswith("vnis[0].vni:")


def test_error_index_points_at_the_bad_item() -> None:
    raw = base(vnis=[{"vni": 1, "device": "vx1", "bridge": "br"}, {"vni": 2, "device": "vx2", "bridge": "br"}, {"vni": 0, "device": "vx3", "bridge": "br"}])
    assert error_of(raw).startswith("vnis[2].vni:")


@pytest.mark.parametrize("key", ["device", "bridge"])
def test_device_and_bridge_missing(key: str) -> None:
    raw = base()
    del raw["vnis"][0][key]
    assert error_of(raw) == f"vnis[0].{key}: missing"
    assert error_of(with_vni(**{key: ""})) == f"vnis[0].{key}: missing"


@pytest.mark.parametrize("name", ["vxlan-name-too-long", "vx 100", "vx/100", "vx:1", "vx@1", "ä"])
@pytest.mark.parametrize("key", ["device", "bridge"])
def test_device_and_bridge_invalid(key: str, name: str) -> None:
    assert error_of(with_vni(**{key: name})).startswith(f"vnis[0].{key}:")


def test_interface_name_length_limit() -> None:
    parse_config(with_vni(device="a" * 15))
    assert error_of(with_vni(device="a" * 16)).startswith("vnis[0].device:")


@pytest.mark.parametrize("rd", ["bogus", "10.0.0.1:65536", "10.0.0.1", "host:1", ":1"])
def test_explicit_rd_invalid(rd: str) -> None:
    assert error_of(with_vni(rd=rd)).startswith("vnis[0].rd:")


def test_default_rd_needs_16_bit_vni() -> None:
    (v,) = parse_config(with_vni(vni=0xFFFF)).vnis
    assert v.rd == RouteDistinguisher("10.0.0.1:65535")
    message = error_of(with_vni(vni=0x10000))
    assert message.startswith("vnis[0].rd:")
    assert "set rd explicitly" in message
    (v,) = parse_config(with_vni(vni=0x10000, rd="65000:65536")).vnis
    assert v.rd == RouteDistinguisher("65000:65536")


def test_missing_route_targets() -> None:
    raw = base()
    del raw["route_target_asn"]
    message = error_of(raw)
    assert message.startswith("vnis[0]: no route targets")
    # only one side given and no ASN to default the other: still an error
    raw["vnis"][0]["import_rts"] = ["65000:100"]
    assert error_of(raw).startswith("vnis[0]: no route targets")


@pytest.mark.parametrize("key", ["route_targets", "import_rts", "export_rts"])
@pytest.mark.parametrize("value", [[], 65000, {"rt": "65000:1"}])
def test_route_target_list_shape(key: str, value: Any) -> None:
    assert error_of(with_vni(**{key: value})).startswith(f"vnis[0].{key}:")


@pytest.mark.parametrize("key", ["route_targets", "import_rts", "export_rts"])
@pytest.mark.parametrize("value", ["nope", ["65000:1", "bad"], ["65536:70000"], [""], [65000]])
def test_route_target_values_invalid(key: str, value: Any) -> None:
    message = error_of(with_vni(**{key: value}))
    assert message.startswith(f"vnis[0].{key}: ")
    assert "route target" in message


def test_duplicate_vni() -> None:
    raw = base(vnis=[{"vni": 100, "device": "vx1", "bridge": "br"}, {"vni": 100, "device": "vx2", "bridge": "br"}])
    assert error_of(raw) == "config.vnis: duplicate vni 100"


def test_duplicate_device() -> None:
    raw = base(vnis=[{"vni": 100, "device": "vx1", "bridge": "br"}, {"vni": 200, "device": "vx1", "bridge": "br"}])
    assert error_of(raw) == "config.vnis: duplicate device vx1"


@pytest.mark.parametrize(
    "address",
    ["localhost", ":50051", "localhost:", "localhost:0", "localhost:65536", "localhost:http", "localhost:-1", "", "1.2.3.4:5:x"],
)
def test_gobgp_address_invalid(address: str) -> None:
    assert error_of(base(gobgp_address=address)).startswith("config.gobgp_address:")


@pytest.mark.parametrize("key", ["batch_window", "resync_interval"])
@pytest.mark.parametrize("value", [0, -1, -0.5, "1", True, None, [1]])
def test_positive_numbers(key: str, value: Any) -> None:
    assert error_of(base(**{key: value})).startswith(f"config.{key}:")


def test_non_ascii_digit_port_is_a_config_error() -> None:
    # '²'.isdigit() is True but int('²') raises: must still be a ConfigError naming the field
    assert error_of(base(gobgp_address="localhost:²")).startswith("config.gobgp_address:")


def test_non_ascii_digit_route_target_is_a_config_error() -> None:
    assert error_of(with_vni(route_targets=["65000:²"])).startswith("vnis[0].route_targets:")


# -- load_config_file -------------------------------------------------------------------


def test_load_config_file_yaml_and_json(tmp_path: Path) -> None:
    y = tmp_path / "a.yaml"
    y.write_text("vtep: 10.0.0.1\nroute_target_asn: 65000\nvnis:\n  - {vni: 100, device: vxlan100, bridge: br100}\n")
    cfg = parse_config(load_config_file(y))
    assert cfg.vnis[0].rd == RouteDistinguisher("10.0.0.1:100")
    j = tmp_path / "a.json"
    j.write_text('{"vtep": "10.0.0.2", "vnis": []}')
    assert load_config_file(j) == {"vtep": "10.0.0.2", "vnis": []}


def test_load_config_file_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config_file(empty) == {}
    with pytest.raises(ConfigError, match="config file"):
        load_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vtep: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config_file(listy)


@pytest.mark.parametrize("value", ["false", "0", 1])
def test_seed_prefix_vteps_must_be_a_boolean(value: Any) -> None:
    # Every other typed field is checked strictly (True is rejected where a number is expected),
    # but bool() of the string "false" is True: a quoted YAML "false" would silently turn the
    # opt-in Type-5 VTEP form on. A non-boolean must be a ConfigError naming the field.
    assert error_of(base(seed_prefix_vteps=value)).startswith("config.seed_prefix_vteps:")


@pytest.mark.parametrize("value", [True, False])
def test_seed_prefix_vteps_boolean(value: bool) -> None:
    assert parse_config(base(seed_prefix_vteps=value)).seed_prefix_vteps is value


@pytest.mark.parametrize("rd", ["65000:4294967296", "70000:70000"])
def test_explicit_rd_out_of_range_is_a_config_error(rd: str) -> None:
    # accepted today, then encode_imet fails (protobuf "Value out of range") or gobgp truncates
    # the number when the agent advertises its Type-3 route
    assert error_of(with_vni(rd=rd)).startswith("vnis[0].rd:")


def test_vni_subnets_are_parsed_and_checked() -> None:
    base = {"vtep": "10.0.0.1", "route_target_asn": 65000}
    cfg = parse_config(base | {"vnis": [{"vni": 100, "device": "vx100", "bridge": "br0", "subnets": ["192.168.100.0/24", "2001:db8::/64"]}]})
    assert [str(n) for n in cfg.vnis[0].subnets] == ["192.168.100.0/24", "2001:db8::/64"]
    assert parse_config(base | {"vnis": [{"vni": 100, "device": "vx100", "bridge": "br0"}]}).vnis[0].subnets == ()
    for bad, why in (("192.168.100.1/24", "not a network prefix"), ("224.0.0.0/4", "cannot hold VM addresses"),
                     ("banana", "not a network prefix"), ("169.254.0.0/16", "cannot hold VM addresses")):
        with pytest.raises(ConfigError, match=rf"vnis\[0\]\.subnets: .*{why}"):
            parse_config(base | {"vnis": [{"vni": 100, "device": "vx100", "bridge": "br0", "subnets": [bad]}]})


def test_the_deploy_example_config_is_valid() -> None:
    from pathlib import Path

    cfg = parse_config(load_config_file(Path(__file__).resolve().parents[2] / "deploy" / "agent.yaml"))
    assert [v.vni for v in cfg.vnis] == [100, 200] and cfg.metrics_address == "127.0.0.1:9470"
