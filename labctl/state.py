"""What a running lab is made of, kept under /run/evpn-lab/<lab>/state.json.

The state survives labctl being killed mid-way; `down` also finds leftovers by
the lab's namespace prefix, so it works even when the state file is missing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .plan import RUN_ROOT


@dataclass
class LabState:
    lab: str
    topology: dict[str, Any]  # the validated topology document, so the lab never needs its file again
    source: str
    pids: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> role -> pid
    down_hosts: list[str] = field(default_factory=list)
    complete: bool = False

    @property
    def path(self) -> Path:
        return state_path(self.lab)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def state_path(lab: str) -> Path:
    return RUN_ROOT / lab / "state.json"


def load(lab: str) -> LabState | None:
    try:
        data = json.loads(state_path(lab).read_text())
        return LabState(**data)
    except (OSError, ValueError, TypeError):
        return None


def labs() -> list[str]:
    if not RUN_ROOT.is_dir():
        return []
    return sorted(p.name for p in RUN_ROOT.iterdir() if (p / "state.json").exists())
