"""What a running lab is made of, kept under /run/evpn-lab/<lab>/state.json.

The state survives labctl being killed mid-way; `down` also finds leftovers by the lab's namespace
prefix, so it works even when the state file is missing. The topology is stored as the document of
the parsed Topology (`Topology.to_document()`): the lab never needs its file again.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import plan
from .plan import state_file
from .rundir import write_private_json
from .topology import LAB_NAME_RE


@dataclass
class LabState:
    lab: str
    topology: dict[str, Any]  # Topology.to_document() of the lab as it is now
    source: str
    pids: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> role -> pid
    down_hosts: list[str] = field(default_factory=list)
    down_controllers: list[str] = field(default_factory=list)  # namespaces of controllers `labctl kill` took down
    complete: bool = False

    def __post_init__(self) -> None:
        # not a field (asdict would copy it): nodes start in parallel threads and record their PIDs here
        self._lock = threading.RLock()

    @property
    def path(self) -> Path:
        return state_file(self.lab)

    def save(self) -> None:
        """Write the state file. Compact JSON (json's C encoder; with `indent` it uses its pure-Python one) of
        the fields as they are (no `asdict` deep copy): a 50 x 10 lab's state is ~100 KB and `up` saves it
        once per daemon started, which cost labctl seconds of CPU."""
        with self._lock:  # one writer at a time (the file is replaced through one temporary name)
            write_private_json(self.path, {f.name: getattr(self, f.name) for f in fields(self)})

    def record_pid(self, node: str, role: str, pid: int) -> None:
        with self._lock:
            self.pids.setdefault(node, {})[role] = pid
            self.save()

    def forget_pids(self, node: str) -> None:
        with self._lock:
            self.pids.pop(node, None)
            self.save()


def load(lab: str) -> LabState | None:
    if not LAB_NAME_RE.match(lab):
        return None
    try:
        data = json.loads(state_file(lab).read_text())
        return LabState(**data)
    except (OSError, ValueError, TypeError):
        return None


def labs() -> list[str]:
    if not plan.RUN_ROOT.is_dir():
        return []
    return sorted(p.name for p in plan.RUN_ROOT.iterdir() if LAB_NAME_RE.match(p.name) and state_file(p.name).exists())
