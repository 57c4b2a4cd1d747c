"""labctl trusts its input only as far as the lab's own state and naming go: under umask 000 the run
directory is still root's only, and `exec`/`down` never reach a namespace the lab does not name."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from labctl import netns
from labctl.plan import lab_dir

from .labkit import LABCTL, labctl, lab_namespaces, make_topology, write_topology

LAB = "ittrust"


def test_modes_and_ownership(tmp_path: Path) -> None:
    topo = write_topology(tmp_path / "lab.yaml", make_topology(LAB, hosts=2, vms_per_host=1))
    up = subprocess.run([LABCTL, "up", str(topo)], capture_output=True, text=True, timeout=180, preexec_fn=lambda: os.umask(0))
    assert up.returncode == 0, up.stdout + up.stderr

    # everything under the run directory is root's only: 0700 directories, 0600 files and sockets (the agent
    # writes its status file with a mode of its own, 0644: nobody else reaches it through the 0700 directories)
    run = lab_dir(LAB)
    paths = [run, *run.rglob("*")]
    agents_own = {"agent.status.json"}
    loose = [f"{p} {oct(stat.S_IMODE(p.lstat().st_mode))}" for p in paths
             if stat.S_IMODE(p.lstat().st_mode) & 0o077 and p.name not in agents_own]
    assert loose == [], loose
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in paths if p.is_dir())
    sock = run / f"{LAB}-1" / "gobgpd.sock"
    assert stat.S_ISSOCK(sock.lstat().st_mode) and stat.S_IMODE(sock.lstat().st_mode) == 0o600
    assert {p.name for p in paths} >= {"state.json", "gobgpd.toml", "agent.yaml", "agent.log", "gobgpd.log", "agent.status.json"}

    stray, foreign = f"{LAB}-stray", "itforeign"  # one with the lab's prefix, one unrelated: neither is the lab's
    netns.create(stray)
    netns.create(foreign)
    sleeper = subprocess.Popen(["ip", "netns", "exec", stray, "sleep", "300"])
    try:
        for node in (foreign, stray, "stray"):
            refused = labctl("exec", "--lab", LAB, node, "--", "true")
            assert refused.returncode == 1 and f"no node {node!r}" in refused.stderr, refused.stderr
        assert labctl("exec", "--lab", LAB, "vm11", "--", "true").returncode == 0
        assert labctl("exec", "--lab", LAB, f"{LAB}-2", "--", "true").returncode == 0

        down = labctl("down", LAB)
        assert down.returncode == 0, down.stderr
        assert lab_namespaces(LAB) == [stray] and foreign in netns.list_namespaces()
        assert sleeper.poll() is None, "a process in a namespace the lab does not name was killed"
        again = labctl("down", LAB)  # the lab is gone: its prefix alone gives nothing to remove
        assert again.returncode == 1 and "no lab named" in again.stderr
        assert lab_namespaces(LAB) == [stray] and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
        netns.remove(stray)
        netns.remove(foreign)
