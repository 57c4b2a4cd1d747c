"""Link impairment without root: the topology's `netem` field (validated, one line per bad value), the
conversions to and from the kernel's netem options, and the userspace delay line's decision per frame."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from labctl import plan as plan_module
from labctl.cli import main
from labctl.delayline import Settings, hold_time
from labctl.errors import TopologyError
from labctl.netem import TAP, from_options, qdisc_arguments, settings_for
from labctl.state import LabState
from labctl.topology import Netem, parse_topology
from tests.unit.labctl_builders import make_topology

GOOD = make_topology("t", hosts=2, vms_per_host=1)


def _with_netem(value: Any, host: int = 0) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    doc["hosts"][host]["netem"] = value
    return doc


def test_netem_is_read_per_host_and_survives_the_document_round_trip() -> None:
    topo = parse_topology(_with_netem({"delay_ms": 50, "jitter_ms": 5, "loss_pct": 1}))
    assert topo.hosts[0].netem == Netem(50.0, 5.0, 1.0)
    assert topo.hosts[1].netem is None
    assert parse_topology(topo.to_document()) == topo
    assert "netem" not in topo.to_document()["hosts"][1]  # a clean host's document is unchanged


def test_fields_are_optional_and_all_zero_is_a_clean_link() -> None:
    assert parse_topology(_with_netem({"loss_pct": 0.5})).hosts[0].netem == Netem(0.0, 0.0, 0.5)
    assert parse_topology(_with_netem({})).hosts[0].netem is None
    assert parse_topology(_with_netem({"delay_ms": 0})).hosts[0].netem is None


@pytest.mark.parametrize(("value", "field"), [
    ({"delay_ms": -1}, "delay_ms"),
    ({"delay_ms": "50ms"}, "delay_ms"),
    ({"delay_ms": True}, "delay_ms"),
    ({"delay_ms": 10_001}, "delay_ms"),
    ({"delay_ms": float("nan")}, "delay_ms"),
    ({"delay_ms": None}, "delay_ms"),
    ({"loss_pct": 101}, "loss_pct"),
    ({"loss_pct": -0.1}, "loss_pct"),
    ({"jitter_ms": [5]}, "jitter_ms"),
    ({"delay_ms": 5, "jitter_ms": 10}, "jitter_ms"),
    ({"delay": 50}, "delay"),
])
def test_bad_values_are_one_line_naming_the_field(value: dict[str, Any], field: str) -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology(_with_netem(value, host=1), "lab.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"lab.yaml: hosts[1].netem.{field}:"), message


def test_netem_must_be_a_mapping() -> None:
    with pytest.raises(TopologyError, match=r"hosts\[0\]\.netem: expected a mapping"):
        parse_topology(_with_netem("50ms"))


def test_with_netem_edits_one_host_and_validates() -> None:
    topo = parse_topology(GOOD)
    impaired = topo.with_netem("t-2", Netem(20, 2, 0))
    assert impaired.hosts[1].netem == Netem(20, 2, 0) and topo.hosts[1].netem is None
    assert impaired.with_netem("t-2", None) == topo
    with pytest.raises(TopologyError, match="jitter_ms"):
        topo.with_netem("t-1", Netem(1, 2, 0))
    with pytest.raises(TopologyError, match="not a hypervisor"):
        topo.with_netem("t-9", Netem(1, 0, 0))


def test_apply_may_change_a_hosts_netem_but_nothing_else() -> None:
    topo = parse_topology(GOOD)
    bigger = copy.deepcopy(make_topology("t", hosts=3, vms_per_host=1))
    bigger["hosts"][0]["netem"] = {"delay_ms": 10}
    added = topo.hosts_added_by(parse_topology(bigger))
    assert [h.name for h in added] == ["t-3"]


def test_kernel_options_round_trip() -> None:
    netem = Netem(50, 5, 1)
    args = qdisc_arguments(netem)
    assert args == {"delay": 50_000, "jitter": 5_000, "loss": 1}
    tick = 15.625  # ticks per microsecond on a kernel with a 64 ns tick
    u32 = int((2**32 - 1) * 1 / 100)
    assert from_options(int(50_000 * tick), int(5_000 * tick), u32, tick) == netem


def test_delay_line_settings_follow_the_topology() -> None:
    settings = settings_for(Netem(50, 5, 1))
    assert (settings.interface, settings.tap) == ("uplink", TAP)
    assert Settings(**{k: v for k, v in vars(settings).items()}) == settings
    assert '"delay_ms": 50' in settings.to_json()


def test_hold_time_is_delay_plus_uniform_jitter_and_loss_drops_its_share() -> None:
    rng = random.Random(7)
    settings = Settings("uplink", TAP, 50, 5, 1)
    holds = [hold_time(settings, rng) for _ in range(20_000)]
    kept = [h for h in holds if h is not None]
    assert 0.005 < 1 - len(kept) / len(holds) < 0.015  # about 1 % dropped
    assert min(kept) >= 0.045 and max(kept) <= 0.055
    assert abs(sum(kept) / len(kept) - 0.050) < 0.001
    assert hold_time(Settings("uplink", TAP, 20, 0, 0), rng) == 0.020
    assert hold_time(Settings("uplink", TAP, 1, 5, 0), random.Random(1)) is not None  # never negative


# -- the CLI's input, on a fake lab (a run directory with a state, no namespaces) ---------------


@pytest.fixture
def fake_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root = tmp_path / "run" / "evpn-lab"
    monkeypatch.setattr(plan_module, "RUN_ROOT", root)
    topo = parse_topology(make_topology("t", hosts=2, vms_per_host=1))
    (root / "t").mkdir(parents=True)
    (root / "t" / "state.json").write_text(json.dumps(asdict(LabState("t", topo.to_document(), "test.yaml"))))
    return "t"


def _error_line(args: list[str], expect: str) -> None:
    result = CliRunner().invoke(main, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code in (1, 2) and len(lines) == 1 and expect in lines[0], result.output


@pytest.mark.parametrize(("args", "expect"), [
    (["netem", "t-1", "--clear", "--delay", "5"], "--clear takes no"),
    (["netem", "t-9", "--delay", "5"], "'t-9' is not a hypervisor"),
    (["netem", "t-1", "--jitter", "10"], "hosts[0].netem.jitter_ms: 10 ms is more than delay_ms 0 ms"),
    (["capture", "t-1:"], "expected NODE or NODE:INTERFACE"),
    (["capture", "nosuch"], "no node 'nosuch' in lab t"),
])
def test_bad_cli_input_is_one_line(fake_lab: str, args: list[str], expect: str) -> None:
    _error_line(args, expect)


def test_bad_numbers_are_refused_by_the_option(fake_lab: str) -> None:
    result = CliRunner().invoke(main, ["netem", "t-1", "--loss", "120"])
    assert result.exit_code == 2 and "--loss" in result.output and "0<=x<=100" in result.output


@pytest.mark.parametrize("command", ["capture", "netem"])
def test_help_has_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output and f"labctl {command} " in result.output

