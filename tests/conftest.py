"""Shared test set-up. Integration tests need root, gobgpd and the kernel's vxlan: without them they
fail loudly (never skip), and every lab they make is removed afterwards, pass or fail."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # as agent/__init__.py says: the test process forks too


def _integration(item: pytest.Item) -> bool:
    return "integration" in Path(str(item.fspath)).parts


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _integration(item):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def lab_environment() -> None:
    """Preconditions of the integration tests, checked once; a missing one is a failure, not a skip."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root (network namespaces need it)")
    for program in ("ip", "bridge", "ping"):
        if shutil.which(program) is None:
            problems.append(f"{program} is not installed (scripts/bootstrap installs it)")
    from protos import dist

    try:  # the gobgpd/gobgp labctl runs, and stubs generated for that gobgpd
        gobgp = dist.select()
        dist.program("gobgp", gobgp)
        dist.check_stubs_match(gobgp)
        if gobgp.origin == "project":  # tests run the gobgp CLI by name: the one of that gobgpd (its bin holds only the two)
            os.environ["PATH"] = f"{gobgp.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    except dist.DistError as exc:
        problems.append(str(exc))
    if problems:
        pytest.fail("integration environment incomplete: " + "; ".join(problems), pytrace=False)


def _remove_test_labs() -> None:
    from labctl import netns
    from labctl.lab import teardown
    from labctl.plan import RUN_ROOT

    from tests.integration.labkit import TEST_LAB_PREFIX

    labs = {n.split("-", 1)[0] for n in netns.list_namespaces() if n.startswith(TEST_LAB_PREFIX)}
    if RUN_ROOT.is_dir():
        labs |= {p.name for p in RUN_ROOT.iterdir() if p.name.startswith(TEST_LAB_PREFIX) and "." not in p.name}
        for failed in RUN_ROOT.glob(f"{TEST_LAB_PREFIX}*.failed"):
            shutil.rmtree(failed, ignore_errors=True)
    for lab in sorted(labs):
        teardown(lab)


@pytest.fixture(autouse=True)
def _clean_labs(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Before and after every integration test: no test lab may be left behind."""
    if not _integration(request.node):
        yield
        return
    request.getfixturevalue("lab_environment")
    _remove_test_labs()
    yield
    _remove_test_labs()
