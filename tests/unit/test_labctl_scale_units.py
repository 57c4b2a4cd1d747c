"""Pure parts of labctl's big-lab support: the memory report, the thread pool, the supervisor's command
line, verify's host sample."""

from __future__ import annotations

import os
import threading
import time

import pytest

from labctl.generate import generate
from labctl.memory import ProcessMemory, read_process, render, summarize
from labctl.parallel import run_all
from labctl.supervise import SupervisorStatus, UsageError, parse_args
from labctl.topology import parse_topology
from labctl.verify import ALL_PAIRS_UP_TO, SAMPLED_HOSTS, sample_hosts
from tests.unit.labctl_builders import topology

# -- memory -------------------------------------------------------------------------------------


def test_memory_sums_per_role_largest_first_and_renders_totals() -> None:
    report = summarize([
        ProcessMemory(1, "evpn-agent", 60 * 1024, 36 * 1024),
        ProcessMemory(2, "evpn-agent", 62 * 1024, 38 * 1024),
        ProcessMemory(3, "gobgpd", 28 * 1024, 10 * 1024),
        ProcessMemory(4, "sup-agent", 14 * 1024, 6 * 1024),
    ])
    assert [r.role for r in report.roles] == ["evpn-agent", "gobgpd", "sup-agent"]
    assert report.processes == 4 and report.rss_kib == 164 * 1024 and report.pss_kib == 90 * 1024
    assert report.roles[0].rss_each_mib == 61.0 and report.roles[0].pss_each_mib == 37.0
    text = render(report, hosts=2)
    assert text.startswith("total RSS 164 MiB, PSS 90 MiB in 4 processes (45 MiB PSS per hypervisor): evpn-agent 2 x 61.0 MiB RSS / 37.0 PSS")


def test_memory_of_this_process_is_read_from_proc() -> None:
    me = read_process(os.getpid())
    assert me is not None and me.rss_kib > 1000 and 0 < me.pss_kib <= me.rss_kib
    assert read_process(2**22 + 12345) is None  # no such PID: nothing, no error


# -- the thread pool ---------------------------------------------------------------------------------


def test_run_all_keeps_the_items_order_and_runs_them_at_once() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def work(n: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05 * (5 - n))  # the first items finish last
        with lock:
            running[0] -= 1
        return n * n

    done: list[int] = []
    assert run_all([1, 2, 3, 4], work, workers=4, done=lambda item, _: done.append(item)) == [1, 4, 9, 16]
    assert peak[0] == 4 and sorted(done) == [1, 2, 3, 4] and done[0] == 4


def test_run_all_raises_the_first_failure_and_starts_nothing_more() -> None:
    started: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n == 0:
            raise ValueError("item 0 broke")
        time.sleep(0.05)
        return n

    with pytest.raises(ValueError, match="item 0 broke"):
        run_all(list(range(40)), work, workers=2)
    assert len(started) < 40


def test_run_all_with_one_worker_runs_in_order_here() -> None:
    seen: list[str] = []
    assert run_all(["a", "b"], lambda s: seen.append(threading.current_thread().name) or s.upper(), workers=1) == ["A", "B"]
    assert set(seen) == {threading.current_thread().name}


# -- the supervisor's command line --------------------------------------------------------------------


def test_supervisor_arguments_both_forms() -> None:
    assert parse_args(["--role", "gobgpd", "--status=/r/s.json", "--restart-arg=-r", "--unlink", "/r/sock", "--", "gobgpd", "-f", "c"]) == \
        ("gobgpd", "/r/s.json", ["-r"], ["/r/sock"], ["gobgpd", "-f", "c"])


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "a", "--", "x"], "--status must be given once"),
    (["--role", "a", "--status", "s"], "no command to supervise"),
    (["--role", "a", "--status", "s", "--bogus", "1", "--", "x"], "unknown option '--bogus'"),
    (["--role"], "--role needs a value"),
])
def test_supervisor_arguments_refused_with_one_line(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args(args)


def test_supervisor_status_file_has_every_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    status = SupervisorStatus("agent", ["evpn-agent", "run"])
    status.child_pid, status.restarts = 42, 1
    status.write(str(tmp_path / "agent.supervisor.json"))
    data = json.loads((tmp_path / "agent.supervisor.json").read_text())
    assert data["child_pid"] == 42 and data["restarts"] == 1 and data["supervisor_pid"] == os.getpid()
    assert set(data) == set(SupervisorStatus.FIELDS)


# -- verify's host sample ------------------------------------------------------------------------------


def test_small_lab_probes_every_host() -> None:
    hosts = list(topology("t", hosts=ALL_PAIRS_UP_TO, vms_per_host=1).hosts)
    assert sample_hosts(hosts) == (hosts, "")


def test_big_lab_samples_hosts_evenly_and_says_so() -> None:
    hosts = list(parse_topology(generate(50, 1)).hosts)
    chosen, note = sample_hosts(hosts)
    assert len(chosen) == SAMPLED_HOSTS and len({h.name for h in chosen}) == SAMPLED_HOSTS
    assert note == f"sampled {SAMPLED_HOSTS} of 50 hosts; "
    assert chosen[0] is hosts[0] and chosen[-1] in hosts[-5:]  # spread over the whole list
    assert sample_hosts(hosts) == (chosen, note)  # deterministic
