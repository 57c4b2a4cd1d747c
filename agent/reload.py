"""Run-time config changes (SIGHUP): which VNIs stay untouched, which come, which go (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import AgentConfig, ConfigError, VniConfig


@dataclass(frozen=True)
class ReloadPlan:
    kept: tuple[VniConfig, ...]  # identical in both configs: no route and no kernel entry of theirs is touched
    added: tuple[VniConfig, ...]  # new, or changed (a changed VNI is removed and served again)
    removed: tuple[VniConfig, ...]

    @property
    def removed_devices(self) -> set[str]:
        return {v.device for v in self.removed} | {v.bridge for v in self.removed}


def plan_reload(old: AgentConfig, new: AgentConfig) -> ReloadPlan:
    """Compare two configs; ConfigError if the change needs a restart."""
    if (new.vtep, new.gobgp_address) != (old.vtep, old.gobgp_address):
        raise ConfigError("vtep and gobgp_address cannot change at run time; restart the agent")
    before = {v.vni: v for v in old.vnis}
    kept = tuple(v for v in new.vnis if before.get(v.vni) == v)
    kept_numbers = {v.vni for v in kept}
    return ReloadPlan(
        kept=kept,
        added=tuple(v for v in new.vnis if v.vni not in kept_numbers),
        removed=tuple(v for v in old.vnis if v.vni not in kept_numbers),
    )
