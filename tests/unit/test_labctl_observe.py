"""observe: waiting returns the last observation; what a RIB says, read without judging."""

from __future__ import annotations

import itertools

import pytest

from labctl.errors import LabError
from labctl.observe import expected_macs, imet_vteps, names_vtep, poll, wait_until
from tests.unit.labctl_builders import imet_event, mac_event


def test_poll_returns_the_first_satisfying_observation() -> None:
    counter = itertools.count()
    polled = poll(lambda: next(counter), lambda n: n >= 3, timeout=5, interval=0.001)
    assert polled.ok and polled.value == 3


def test_poll_returns_the_last_observation_on_timeout() -> None:
    counter = itertools.count()
    polled = poll(lambda: next(counter), lambda n: False, timeout=0.05, interval=0.01)
    assert not polled.ok and polled.value is not None and polled.value >= 1


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(LabError, match="timed out after 0s waiting for the moon"):
        wait_until("the moon", lambda: False, 0.02, 0.01)


def test_imet_vteps_and_names_vtep() -> None:
    rib = [imet_event("10.0.0.101", 100), imet_event("10.0.0.102", 100, next_hop="10.0.0.100"), imet_event("10.0.0.103", 200)]
    assert imet_vteps(rib, 100) == {"10.0.0.101": "10.0.0.101", "10.0.0.102": "10.0.0.100"}
    assert names_vtep(rib, "10.0.0.103") and not names_vtep(rib, "10.0.0.104")


def test_expected_macs_highest_sequence_then_lowest_vtep() -> None:
    mac = "02:00:00:00:00:01"
    rib = [mac_event("10.0.0.102", 100, mac, seq=1), mac_event("10.0.0.103", 100, mac, seq=2), mac_event("10.0.0.101", 100, mac, seq=5)]
    assert expected_macs(rib, "10.0.0.101", 100) == {mac: "10.0.0.103"}  # own VTEP left out
    tie = [mac_event("10.0.0.103", 100, mac), mac_event("10.0.0.102", 100, mac)]
    assert expected_macs(tie, "10.0.0.101", 100) == {mac: "10.0.0.102"}
