"""labctl's layering, checked on the source: no node-kind branches outside labctl/nodes/, reading and
judging apart, no peer module imported just for a helper."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LABCTL = Path(__file__).resolve().parents[2] / "labctl"
MODULES = sorted(p for p in LABCTL.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """labctl modules imported by `path` (relative imports resolved to dotted names under labctl)."""
    package = ".".join(path.relative_to(LABCTL.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m.startswith("labctl") or m.startswith("agent")}


def _module(name: str) -> Path:
    return LABCTL / f"{name}.py"


def test_no_kind_branches_outside_the_node_kinds() -> None:
    for path in MODULES:
        if "nodes" in path.parts:
            continue
        text = path.read_text()
        assert "is_frr" not in text and 'kind == "frr"' not in text, path


@pytest.mark.parametrize(("module", "forbidden"), [
    ("status", {"labctl.verify"}),
    ("networks", {"labctl.migrate"}),
    ("netns", {"agent.kernel"}),
    ("observe", {"labctl.verify", "labctl.status"}),
    ("topology", {"labctl.lab", "labctl.netns", "labctl.observe"}),
    ("plan", {"labctl.lab", "labctl.netns", "labctl.observe"}),
])
def test_modules_do_not_reach_into_peers_for_helpers(module: str, forbidden: set[str]) -> None:
    imported = _imports(_module(module))
    assert not {m for m in imported if any(m == f or m.startswith(f + ".") for f in forbidden)}, imported


def test_verify_reads_nothing_itself() -> None:
    imported = _imports(_module("verify"))
    assert not {m for m in imported if m.startswith(("agent.kernel", "agent.gobgp", "labctl.netns", "labctl.nodes"))}, imported
    assert "subprocess" not in _module("verify").read_text()


def test_only_the_plan_builds_port_and_router_names() -> None:
    for path in MODULES:
        if path.name == "plan.py":
            continue
        text = path.read_text()
        for pattern in ('f"p-{', 'f"r-{', 'f"vxlan{', 'f"br{', '"state.json"', '"gobgpd.sock"', '"agent.yaml"'):
            assert pattern not in text, (path, pattern)
