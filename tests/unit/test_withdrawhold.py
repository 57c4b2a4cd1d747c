"""Unit tests for agent/withdrawhold.py: the stale withdrawal grace (pure; the tests pass the time)."""

from __future__ import annotations

import ipaddress
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.codec import decode_path, encode_imet
from agent.config import ConfigError, parse_config
from agent.routes import RouteDistinguisher, RouteEvent, RouteTarget
from agent.withdrawhold import LOG_EACH_UP_TO, HoldChanges, WithdrawHold, log_changes
from tests.unit.builders import add, imet, macip, withdraw

GRACE = 3.0
A = imet("10.0.0.2", 100)
B = macip("10.0.0.3", mac="02:00:00:00:00:33", seq=1)


def stale_withdraw(route: object) -> RouteEvent:
    return RouteEvent(route, withdrawn=True, stale=True)  # type: ignore[arg-type]


def keys(events: list[RouteEvent]) -> list[tuple[object, ...]]:
    return [e.route.key for e in events]


def test_the_decoder_carries_gobgps_stale_flag() -> None:
    path = encode_imet(RouteDistinguisher.parse("10.0.0.2:100"), ipaddress.ip_address("10.0.0.2"), 100, [RouteTarget.parse("65000:100")])
    path.neighbor_ip = "10.0.0.100"
    assert decode_path(path).stale is False  # type: ignore[union-attr]
    path.is_withdraw, path.stale = True, True
    event = decode_path(path)
    assert event is not None and event.withdrawn and event.stale


@pytest.mark.parametrize("value, expected", [(None, 3.0), (0, 0.0), (1.5, 1.5), (600, 600.0)])
def test_the_grace_is_an_agent_config_option(value: float | None, expected: float) -> None:
    raw = {"vtep": "10.0.0.1", "route_target_asn": 65000, "vnis": []}
    if value is not None:
        raw["stale_withdraw_grace"] = value
    assert parse_config(raw).stale_withdraw_grace == expected


@pytest.mark.parametrize("value", [-1, 601, "3", True])
def test_a_bad_grace_is_refused_naming_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match="config.stale_withdraw_grace"):
        parse_config({"vtep": "10.0.0.1", "vnis": [], "stale_withdraw_grace": value})


def test_a_stale_withdrawal_is_held_and_cancelled_when_the_route_comes_back() -> None:
    hold = WithdrawHold(GRACE)
    passed, changes = hold.admit([stale_withdraw(A)], now=10.0)
    assert passed == [] and keys(changes.held) == [A.key] and len(hold) == 1 and A.key in hold
    assert hold.next_deadline() == 13.0
    passed, changes = hold.admit([add(A)], now=10.6)
    assert passed == [add(A)] and keys(changes.cancelled) == [A.key] and len(hold) == 0
    assert hold.next_deadline() is None
    assert hold.due(100.0)[0] == []
    assert (hold.held_total, hold.cancelled_total, hold.released_total) == (1, 1, 0)


def test_a_held_withdrawal_is_released_at_its_deadline_not_before() -> None:
    hold = WithdrawHold(GRACE)
    hold.admit([stale_withdraw(A)], now=10.0)
    assert hold.due(12.99)[0] == []
    released, changes = hold.due(13.0)
    assert released == [stale_withdraw(A)] and keys(changes.released) == [A.key]
    assert len(hold) == 0 and hold.released_total == 1


def test_genuine_withdrawals_pass_at_once_and_keep_their_order() -> None:
    hold = WithdrawHold(GRACE)
    events = [add(A), withdraw(B), withdraw(A)]
    passed, changes = hold.admit(events, now=1.0)
    assert passed == events and not changes and len(hold) == 0


def test_a_genuine_withdrawal_of_a_held_route_ends_the_hold_and_passes() -> None:
    hold = WithdrawHold(GRACE)
    hold.admit([stale_withdraw(A)], now=1.0)
    passed, changes = hold.admit([withdraw(A)], now=1.5)
    assert passed == [withdraw(A)] and keys(changes.released) == [A.key] and len(hold) == 0
    assert hold.due(10.0)[0] == []  # nothing left to release twice


def test_a_repeated_stale_withdrawal_keeps_the_first_deadline() -> None:
    hold = WithdrawHold(GRACE)
    hold.admit([stale_withdraw(A)], now=1.0)
    _, changes = hold.admit([stale_withdraw(A)], now=2.5)
    assert not changes.held and hold.next_deadline() == 4.0 and hold.held_total == 1


def test_withdrawal_then_announcement_in_one_batch_passes_only_the_announcement() -> None:
    hold = WithdrawHold(GRACE)
    passed, changes = hold.admit([stale_withdraw(A), add(B), add(A)], now=1.0)
    assert passed == [add(B), add(A)] and len(hold) == 0 and keys(changes.cancelled) == [A.key]


def test_grace_zero_holds_nothing() -> None:
    hold = WithdrawHold(0.0)
    events = [stale_withdraw(A), stale_withdraw(B)]
    assert hold.admit(events, now=1.0)[0] == events and len(hold) == 0


def test_local_routes_are_never_held() -> None:
    hold = WithdrawHold(GRACE)
    own = RouteEvent(A, withdrawn=True, local=True, stale=True)
    assert hold.admit([own], now=1.0)[0] == [own]


def test_a_negative_grace_is_refused() -> None:
    with pytest.raises(ValueError, match="grace"):
        WithdrawHold(-1.0)


def test_a_new_sessions_table_cancels_the_holds_it_answers_and_keeps_the_others() -> None:
    hold = WithdrawHold(GRACE)
    hold.admit([stale_withdraw(A), stale_withdraw(B)], now=1.0)
    table, changes = hold.resync([add(A)], now=2.0)
    assert keys(changes.cancelled) == [A.key]
    # B is absent from the table: handed to the RIB again (so its entries stay) until its deadline
    assert table[0] == add(A) and [(e.route, e.withdrawn, e.stale) for e in table[1:]] == [(B, False, True)]
    assert len(hold) == 1 and hold.next_deadline() == 4.0
    released, _ = hold.due(4.0)
    assert keys(released) == [B.key] and released[0].withdrawn


def test_resync_without_holds_returns_the_table_itself() -> None:
    hold = WithdrawHold(GRACE)
    table = [add(A)]
    assert hold.resync(table, now=1.0)[0] is table


def test_log_lines_one_per_route_up_to_the_limit_then_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="evpn.agent.withdrawhold")
    log_changes(HoldChanges(held=[stale_withdraw(A)]), GRACE, 1)
    assert "event=withdraw-held type=imet" in caplog.text and "vtep=10.0.0.2" in caplog.text and "grace=3s" in caplog.text
    caplog.clear()
    many = [stale_withdraw(macip("10.0.0.3", mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}")) for i in range(LOG_EACH_UP_TO + 1)]
    log_changes(HoldChanges(cancelled=many), GRACE, 0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"event=withdraw-cancelled count={LOG_EACH_UP_TO + 1} vteps=10.0.0.3 reason=route-back held_now=0"]


# -- properties ---------------------------------------------------------------------------------------

ROUTES = [imet(f"10.0.0.{i}", 100) for i in range(2, 6)]
_event = st.tuples(st.sampled_from(range(len(ROUTES))), st.sampled_from(["add", "withdraw", "stale"]))
_step = st.tuples(st.floats(0.0, 2.0), st.lists(_event, max_size=4))


def _make(kind: str, index: int) -> RouteEvent:
    route = ROUTES[index]
    return {"add": add(route), "withdraw": withdraw(route), "stale": stale_withdraw(route)}[kind]


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, max_size=12), st.sampled_from([0.0, 0.5, 3.0]))
def test_the_rib_sees_what_gobgpd_says_once_the_grace_is_over(steps: list[tuple[float, list[tuple[int, str]]]], grace: float) -> None:
    """Whatever the order of announcements, withdrawals and stale withdrawals: the RIB holds every route
    gobgpd has (nothing announced is held back); a route it has beyond gobgpd's is one gobgpd withdrew as
    stale less than `grace` ago; once `grace` passed without events, the RIB equals gobgpd's table."""
    hold = WithdrawHold(grace)
    gobgpd: set[tuple[object, ...]] = set()
    rib: set[tuple[object, ...]] = set()
    stale_since: dict[tuple[object, ...], float] = {}
    now = 0.0

    def apply(events: list[RouteEvent]) -> None:
        for e in events:
            (rib.discard if e.withdrawn else rib.add)(e.route.key)

    for advance, batch in steps:
        now += advance
        released = hold.due(now)[0]
        apply(released)
        for e in released:
            stale_since.pop(e.route.key, None)
        events = [_make(kind, i) for i, kind in batch]
        for e in events:
            key = e.route.key
            if e.withdrawn:
                gobgpd.discard(key)
                if e.stale and key not in stale_since:
                    stale_since[key] = now
                elif not e.stale:
                    stale_since.pop(key, None)
            else:
                gobgpd.add(key)
                stale_since.pop(key, None)
        apply(hold.admit(events, now)[0])
        assert gobgpd <= rib
        for key in rib - gobgpd:
            assert key in hold and now - stale_since[key] < grace
    apply(hold.due(now + grace)[0])
    assert rib == gobgpd and len(hold) == 0


def test_status_shows_the_withdrawals_held() -> None:
    from agent.statusview import render, summary

    status = {"name": "evpn-agent@h1", "vtep": "10.0.0.101", "pid": 42, "ready": True, "connected": True, "updated": 1000.0,
              "held_withdrawals": 3, "withdrawals_held": 5, "withdrawals_cancelled": 2}
    view = summary(status, now=1000.5)
    assert view["held_withdrawals"] == 3
    text = "\n".join(render(view))
    assert "gobgpd session up  (3 stale withdrawals held)" in text and "withdrawals_held=5" in text and "withdrawals_cancelled=2" in text
    assert "stale withdrawals held" not in "\n".join(render(summary(status | {"held_withdrawals": 0}, now=1000.5)))


def test_a_table_read_cut_short_ends_no_hold() -> None:
    """The table is read part by part; holds end only when it is whole (a read cut short proves nothing:
    the next session's table may lack the route after all)."""
    hold = WithdrawHold(GRACE)
    hold.admit([stale_withdraw(A)], now=1.0)
    hold.table_begin()
    hold.table_part([add(A)])  # ...and gobgpd goes away before the rest
    hold.table_begin()  # the next session
    hold.table_part([add(B)])
    kept, changes = hold.table_end()
    assert [e.route.key for e in kept] == [A.key] and not changes.cancelled and len(hold) == 1
    hold.table_begin()
    hold.table_part([add(A)])
    kept, changes = hold.table_end()
    assert kept == [] and [e.route.key for e in changes.cancelled] == [A.key] and len(hold) == 0
