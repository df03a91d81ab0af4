"""Rollout planning, table-driven with a fake clock."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.rollouts.plan import (
    DeviceState,
    DeviceView,
    RolloutPolicy,
    RolloutState,
    Send,
    cancel,
    plan_waves,
    step,
)

P = DeviceState.PENDING
DL = DeviceState.DOWNLOADING
PR = DeviceState.PROBATION
A = DeviceState.ACTIVE
F = DeviceState.FAILED
RB = DeviceState.ROLLED_BACK
C = DeviceState.CANCELLED
RUN = RolloutState.RUNNING
T0 = 1_800_000_000.0
POLICY = RolloutPolicy(canary=1, probation_s=60, device_timeout_s=600)
IDS = [f"cam-{i:02d}" for i in range(10)]


@pytest.mark.parametrize(
    ("n", "canary", "waves", "sizes"),
    [
        (10, 1, (0.1, 0.5, 1.0), [1, 4, 5]),
        (10, 2, (0.1, 0.5, 1.0), [2, 3, 5]),
        (100, 3, (0.1, 0.5, 1.0), [3, 7, 40, 50]),
        (1, 1, (0.1, 0.5, 1.0), [1]),
        (3, 5, (1.0,), [3]),
        (0, 1, (1.0,), []),
    ],
)
def test_waves(n: int, canary: int, waves: tuple[float, ...], sizes: list[int]) -> None:
    ids = [f"d{i:03d}" for i in range(n)]
    planned = plan_waves(ids, RolloutPolicy(canary=canary, waves=waves))
    assert [len(w) for w in planned] == sizes
    assert sorted(d for w in planned for d in w) == ids


def _views(states: list[DeviceState], waves: list[int], commanded: list[float | None]):
    return [DeviceView(IDS[i], waves[i], s, commanded[i]) for i, s in enumerate(states)]


W = [0, 1, 1, 1, 1, 2, 2, 2, 2, 2]


@pytest.mark.parametrize(
    ("case", "states", "commanded", "wave", "now", "want_state", "want_wave", "sends", "updates"),
    [
        (
            "start: canary sent",
            [P] * 10,
            [None] * 10,
            0,
            T0,
            RUN,
            0,
            [Send("cam-00", "install")],
            {},
        ),
        ("canary on its way: wait", [DL] + [P] * 9, [T0] + [None] * 9, 0, T0 + 10, RUN, 0, [], {}),
        (
            "canary in probation: wait",
            [PR] + [P] * 9,
            [T0] + [None] * 9,
            0,
            T0 + 100,
            RUN,
            0,
            [],
            {},
        ),
        (
            "canary active: wave 2 sent",
            [A] + [P] * 9,
            [T0] + [None] * 9,
            0,
            T0 + 100,
            RUN,
            1,
            [Send(d, "install") for d in IDS[1:5]],
            {},
        ),
        (
            "canary failed: halt, nobody else gets it",
            [F] + [P] * 9,
            [T0] + [None] * 9,
            0,
            T0 + 100,
            RolloutState.HALTED,
            0,
            [Send("cam-00", "revert")],
            dict.fromkeys(IDS[1:], (C, "not sent: the rollout halted")),
        ),
        (
            "1 of 4 failed in wave 2 (25%): halt, revert every commanded",
            [A, F, A, A, DL] + [P] * 5,
            [T0] * 5 + [None] * 5,
            1,
            T0 + 100,
            RolloutState.HALTED,
            1,
            [Send(d, "revert") for d in IDS[:5]],
            dict.fromkeys(IDS[5:], (C, "not sent: the rollout halted")),
        ),
        (
            "1 of 5 rolled back in wave 3 (20%): halt",
            [A] * 5 + [RB, A, A, PR, PR],
            [T0] * 10,
            2,
            T0 + 100,
            RolloutState.HALTED,
            2,
            [Send(d, "revert") for d in IDS if d != "cam-05"],
            {},
        ),
        (
            "silent canary times out into failed and halts",
            [DL] + [P] * 9,
            [T0] + [None] * 9,
            0,
            T0 + 601,
            RolloutState.HALTED,
            0,
            [Send("cam-00", "revert")],
            {
                "cam-00": (F, "timed out: no final answer 600 s after the command"),
                **dict.fromkeys(IDS[1:], (C, "not sent: the rollout halted")),
            },
        ),
        (
            "last wave all active: completed",
            [A] * 10,
            [T0] * 10,
            2,
            T0 + 100,
            RolloutState.COMPLETED,
            2,
            [],
            {},
        ),
    ],
)
def test_step(  # noqa: PLR0917 - pytest parameters
    case, states, commanded, wave, now, want_state, want_wave, sends, updates
) -> None:
    got = step(RUN, wave, _views(states, W, commanded), POLICY, now)
    assert (got.state, got.wave) == (want_state, want_wave), case
    assert sorted(got.send, key=lambda s: s.device_id) == sends, case
    assert got.devices == updates, case


def test_paused_sends_nothing_but_still_times_out() -> None:
    views = _views([A, DL, P, P, P] + [P] * 5, W, [T0, T0] + [None] * 8)
    quiet = step(RolloutState.PAUSED, 1, views, POLICY, T0 + 10)
    assert quiet.send == []
    assert quiet.state is RolloutState.PAUSED
    late = step(RolloutState.PAUSED, 1, views, POLICY, T0 + 700)
    assert late.devices == {"cam-01": (F, "timed out: no final answer 600 s after the command")}
    # Resumed: the rest of wave 2 goes out.
    resumed = step(RUN, 1, views, POLICY, T0 + 10)
    assert [s.device_id for s in resumed.send] == IDS[2:5]


@pytest.mark.parametrize("rollout", list(RolloutState))
def test_final_states_do_nothing(rollout: RolloutState) -> None:
    views = _views([DL] * 10, W, [T0] * 10)
    got = step(rollout, 0, views, POLICY, T0 + 10_000)
    if rollout in (RUN, RolloutState.PAUSED):
        assert got.devices  # not final: the timeouts apply
    else:
        assert got == type(got)(rollout, 0)


def test_cancel_always_ends_whatever_devices_do() -> None:
    views = _views([A, PR, DL, P, P] + [P] * 5, W, [T0, T0, T0, T0] + [None] * 6)
    got = cancel(views)
    assert got.state is RolloutState.CANCELLED
    assert [s.device_id for s in got.send] == ["cam-01", "cam-02", "cam-03"]
    assert all(s.action == "cancel" for s in got.send)
    assert set(got.devices) == set(IDS[4:])
    assert cancel([]).state is RolloutState.CANCELLED


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"waves": [0.5, 0.2, 1.0]}, "rise and end at 1.0"),
        ({"waves": [0.1, 0.5]}, "rise and end at 1.0"),
        ({"probation_s": 600, "device_timeout_s": 300}, "longer than probation_s"),
        ({"canary": 0}, "greater than or equal to 1"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_policy_is_validated(body: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        RolloutPolicy.model_validate(body)
