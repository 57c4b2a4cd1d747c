"""Unit tests for agent/reload.py: what a SIGHUP config change keeps, adds and removes."""

from __future__ import annotations

import pytest

from agent.config import ConfigError
from agent.reload import plan_reload

from tests.unit.builders import make_cfg

V100 = {"vni": 100, "device": "vx100", "bridge": "br100"}
V200 = {"vni": 200, "device": "vx200", "bridge": "br200"}
V300 = {"vni": 300, "device": "vx300", "bridge": "br300"}


def test_unchanged_vnis_are_kept_new_added_missing_removed() -> None:
    plan = plan_reload(make_cfg(vnis=[V100, V200]), make_cfg(vnis=[V100, V300]))
    assert [v.vni for v in plan.kept] == [100]
    assert [v.vni for v in plan.added] == [300]
    assert [v.vni for v in plan.removed] == [200]
    assert plan.removed_devices == {"vx200", "br200"}


def test_a_changed_vni_is_removed_and_added_again() -> None:
    changed = dict(V200, bridge="br9")
    plan = plan_reload(make_cfg(vnis=[V100, V200]), make_cfg(vnis=[V100, changed]))
    assert [v.vni for v in plan.kept] == [100]
    assert [(v.vni, v.bridge) for v in plan.added] == [(200, "br9")]
    assert [(v.vni, v.bridge) for v in plan.removed] == [(200, "br200")]


def test_same_config_changes_nothing() -> None:
    plan = plan_reload(make_cfg(), make_cfg())
    assert not plan.added and not plan.removed and len(plan.kept) == 2


@pytest.mark.parametrize("change", [{"vtep": "10.0.0.7"}, {"gobgp_address": "127.0.0.1:50099"}])
def test_vtep_or_gobgp_address_change_needs_a_restart(change: dict) -> None:
    with pytest.raises(ConfigError, match="restart the agent"):
        plan_reload(make_cfg(), make_cfg(**change))
