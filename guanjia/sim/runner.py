"""Play a plan against a broker: connect every device, send each planned message at its time,
re-send what the gateway has not acked, drain, and report.

The scheduler runs on the calling thread; each device's PUBACKs and Acks arrive on its own
paho network thread (`guanjia.sim.devices`). A send that falls behind its planned time is
sent at once and the lag recorded (`Report.max_lag_s`): the rate the run *held* is in the
report, not only the rate it was asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from guanjia.sim.credentials import Credentials
from guanjia.sim.devices import Endpoint, SimDevice
from guanjia.sim.plan import Planned, SimSpec, summarise
from guanjia.sim.stats import KINDS, KindCounts, Report, SimStats, latency
from guanjia.sim.wire import to_wire


class SimError(Exception):
    """The run cannot start (a device is not provisioned, the broker refused a login)."""


@dataclass(frozen=True)
class RunOptions:
    """How to play a plan."""

    endpoint: Endpoint
    ack_timeout_s: float = 10.0
    max_ack_timeout_s: float = 60.0
    drain_s: float = 30.0
    connect_timeout_s: float = 30.0


def kind_of(topic: str) -> str:
    """The counter a publication belongs to: its contract channel, or ``esphome``."""
    if topic.startswith("esphome/"):
        return "esphome"
    return topic.split("/")[4]


class SimRun:
    """One run: devices, stats and the plan's progress (read by the live display)."""

    def __init__(
        self, spec: SimSpec, sends: list[Planned], creds: Credentials, options: RunOptions
    ):
        self.spec = spec
        self.sends = sends
        self.options = options
        self.stats = SimStats()
        self.done = 0
        self.started = 0.0
        self.finished = 0.0
        self.devices: dict[str, SimDevice] = {}
        wanted = [*spec.camera_ids(), *spec.sensor_ids(), *spec.esphome_ids()]
        missing = [d for d in wanted if d not in creds.devices]
        if missing:
            raise SimError(
                f"credentials: devices: {missing[0]} (and {len(missing) - 1} more) not "
                "provisioned; run `guanjia sim provision` with the same counts and prefix"
            )
        for device_id in wanted:
            cred = creds.devices[device_id]
            self.devices[device_id] = SimDevice(
                options.endpoint,
                spec.site_id,
                device_id,
                cred.password.get_secret_value(),
                esphome=cred.role == "esphome",
                stats=self.stats,
                ack_timeout_s=options.ack_timeout_s,
                max_ack_timeout_s=options.max_ack_timeout_s,
            )

    def connect(self) -> None:
        """Connect every device; SimError naming the first that cannot."""
        for device in self.devices.values():
            device.start()
        deadline = time.monotonic() + self.options.connect_timeout_s
        for device in self.devices.values():
            while not device.connected.wait(0.1):
                if device.refused is not None:
                    raise SimError(f"broker: {device.device_id}: login refused ({device.refused})")
                if time.monotonic() > deadline:
                    raise SimError(
                        f"broker: {self.options.endpoint.host}:{self.options.endpoint.port}: "
                        f"{device.device_id} could not connect within "
                        f"{self.options.connect_timeout_s:.0f} s"
                    )

    def stop(self) -> None:
        """Disconnect every device (all at once: each network thread notices its own
        disconnect on its next wake-up, up to a second later)."""
        for device in self.devices.values():
            device.client.disconnect()
        for device in self.devices.values():
            device.stop()

    def _resend_overdue(self) -> None:
        now = time.monotonic()
        for device in self.devices.values():
            device.resend_overdue(now)

    def play(
        self, tick: Callable[[], None] = lambda: None, stop: Callable[[], bool] = lambda: False
    ) -> None:
        """Send the plan in real time, then wait up to `drain_s` for the last Acks.
        `tick` is called about 10 times a second (the live display); `stop` ends early."""
        t0 = time.time()
        self.started = time.monotonic()
        last_tick = 0.0
        for send in self.sends:
            while True:
                now = time.monotonic()
                if now - last_tick >= 0.1:
                    self._resend_overdue()
                    tick()
                    last_tick = now
                if stop():
                    self.finished = time.monotonic()
                    return
                wait = self.started + send.at - now
                if wait <= 0:
                    break
                time.sleep(min(wait, 0.05))
            self.stats.lag(max(0.0, time.monotonic() - self.started - send.at))
            for out in to_wire(send, self.spec.site_id, t0, time.time()):
                self.devices[out.device_id].send(out, kind_of(out.topic))
            self.done += 1
        drain_until = time.monotonic() + self.options.drain_s
        while time.monotonic() < drain_until and self.pending() and not stop():
            self._resend_overdue()
            tick()
            time.sleep(0.1)
        self.finished = time.monotonic()
        tick()

    def pending(self) -> int:
        """Messages awaiting an Ack across all devices."""
        return sum(len(d.pending_keys()) for d in self.devices.values())

    def counts(self) -> dict[str, KindCounts]:
        """Counters per kind with the pending column filled in."""
        counts = self.stats.snapshot()
        for device in self.devices.values():
            for kind, n in device.pending_by_kind().items():
                counts.setdefault(kind, KindCounts()).pending += n
        return {k: counts[k] for k in KINDS if k in counts}

    def report(self) -> Report:
        """The summary of the run so far."""
        plan = summarise(self.sends)
        counts = self.counts()
        broker, gateway = self.stats.latencies()
        wall = max(1e-9, (self.finished or time.monotonic()) - self.started)
        unacked = [k for d in self.devices.values() for k in d.pending_keys()]
        events = counts.get("event", KindCounts())
        return Report(
            site_id=self.spec.site_id,
            devices=len(self.devices),
            duration_s=self.spec.duration_s,
            wall_s=round(wall, 3),
            planned={
                "event": plan.events,
                "lifecycles": plan.lifecycles,
                "keys": plan.keys,
                "snapshot": plan.snapshots,
                "heartbeat": plan.heartbeats,
                "telemetry": plan.batches,
                "esphome_rounds": plan.esphome_rounds,
                "alarms": plan.alarms,
            },
            kinds=counts,
            broker_latency=latency(broker),
            gateway_latency=latency(gateway),
            events_per_s=round(events.gateway_acked / wall, 2),
            max_lag_s=round(self.stats.max_lag_s, 3),
            unacked_keys=unacked[:20],
        )
