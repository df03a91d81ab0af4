"""The demo's simulated sensors: a charging shed whose port heats up until the gateway cuts
its relay, and a smoke detector whose alarm goes off.

- ``shed-1`` is a stock ESPHome node (profile ``charging_monitor``): it publishes port 1's
  voltage, current, power, temperature and relay state on ESPHome's own topics and obeys
  ``switch/port1_relay/command``. A battery on port 1 runs away: its socket heats by
  `HEATING_C_PER_S` while the relay is on, and cools towards the ambient once it is off.
  The gateway's rules see it pass 70 °C (or rise 10 °C a minute), open an urgent
  ``charging_hazard`` ticket and send ``OFF``; the node switches off and reports the relay
  off, which confirms the cut-off.
- ``smoke-1`` is one of our own nodes (profile ``smoke_detector``, contract
  ``TelemetryBatch``): battery and temperature, and after `SMOKE_AFTER_S` the smoke alarm,
  which opens a ``fire_alarm`` ticket at once.

`Shed` and `SmokeDetector` are pure (time passed in); `SensorSimulator` is the thread that
speaks MQTT. `provision` registers both nodes, with their profiles and broker accounts.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c

SHED_ID = "shed-1"
SMOKE_ID = "smoke-1"
AMBIENT_C = 24.0
HEATING_C_PER_S = 0.8
"""A cell going into thermal runaway: 48 °C a minute at the socket, far over 10 °C/min."""
COOLING_PER_S = 0.03
SMOKE_AFTER_S = 10.0
TICK_S = 1.0


@dataclass
class Shed:
    """Port 1 of a charging shed with a runaway battery. Pure: `step` takes the elapsed time."""

    temperature: float = AMBIENT_C + 6.0
    relay_on: bool = True
    heating_after_s: float = 5.0
    heating_c_per_s: float = HEATING_C_PER_S
    elapsed: float = 0.0

    def step(self, dt: float) -> None:
        """Advance `dt` seconds."""
        self.elapsed += dt
        if self.relay_on and self.elapsed >= self.heating_after_s:
            self.temperature += self.heating_c_per_s * dt
        elif not self.relay_on:
            self.temperature -= (self.temperature - AMBIENT_C) * min(COOLING_PER_S * dt, 1.0)

    def command(self, payload: bytes) -> None:
        """ESPHome switch command: ``ON`` or ``OFF``."""
        if payload.strip().upper() in (b"ON", b"OFF"):
            self.relay_on = payload.strip().upper() == b"ON"

    def states(self) -> dict[str, str]:
        """ESPHome entity states (object id → payload)."""
        current = 2.6 if self.relay_on else 0.0
        return {
            "sensor/port1_voltage": "221.5",
            "sensor/port1_current": f"{current:.2f}",
            "sensor/port1_power": f"{current * 221.5:.1f}",
            "sensor/port1_temperature": f"{self.temperature:.1f}",
            "switch/port1_relay": "ON" if self.relay_on else "OFF",
            "sensor/ambient_temperature": f"{AMBIENT_C:.1f}",
        }


@dataclass
class SmokeDetector:
    """A detector that smells smoke after `alarm_after_s`. Pure."""

    alarm_after_s: float = SMOKE_AFTER_S
    elapsed: float = 0.0
    battery: float = 87.0

    def step(self, dt: float) -> None:
        """Advance `dt` seconds."""
        self.elapsed += dt

    def readings(self) -> dict[str, float]:
        """Metric → value."""
        alarm = 1.0 if self.elapsed >= self.alarm_after_s else 0.0
        return {"smoke_alarm": alarm, "temperature": 23.5, "battery": self.battery}


@dataclass(frozen=True)
class SensorAccounts:
    """Broker passwords of the two nodes (None on an anonymous broker)."""

    shed_password: str | None = field(default=None, repr=False)
    smoke_password: str | None = field(default=None, repr=False)


def provision(database_url: str, passwd_file: Path, acl_file: Path, now: float) -> SensorAccounts:
    """Register both nodes in the demo's site and grid with their profiles and broker
    accounts, and write Mosquitto's password file and ACL again with them."""
    from gateway.provisioning import BrokerAccount, mosquitto_hash, write_broker_files
    from gateway.store import Store
    from guanjia.demo_setup import GRID_ID, SITE_ID

    accounts = SensorAccounts(secrets.token_urlsafe(18), secrets.token_urlsafe(18))
    assert accounts.shed_password is not None
    assert accounts.smoke_password is not None
    store = Store(database_url)
    try:
        for device, kind, profile, esphome, password in (
            (SHED_ID, "charging", "charging_monitor", True, accounts.shed_password),
            (SMOKE_ID, "smoke", "smoke_detector", False, accounts.smoke_password),
        ):
            store.devices.upsert_device(device, SITE_ID, kind, grid_id=GRID_ID, now=now)
            store.sensors.set_sensor_node(device, profile, esphome=esphome)
            role = "esphome" if esphome else "device"
            store.devices.set_mqtt_credential(device, mosquitto_hash(password), role, SITE_ID)
        found = [
            BrokerAccount(a.username, a.password_hash, a.role, a.site_id)
            for a in store.devices.mqtt_accounts()
        ]
    finally:
        store.close()
    write_broker_files(found, passwd_file, acl_file)
    return accounts


class SensorSimulator:
    """Both nodes on the broker, one thread, a reading every `tick_s`."""

    def __init__(
        self,
        host: str,
        port: int,
        site_id: str,
        accounts: SensorAccounts | None = None,
        *,
        tick_s: float = TICK_S,
        smoke_after_s: float = SMOKE_AFTER_S,
        shed: Shed | None = None,
    ) -> None:
        self.site_id = site_id
        self.tick_s = tick_s
        self.shed = shed or Shed()
        self.smoke = SmokeDetector(alarm_after_s=smoke_after_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        accounts = accounts or SensorAccounts()
        self._esp = self._client(host, port, SHED_ID, accounts.shed_password)
        self._esp.will_set(f"{self._prefix}/status", b"offline", qos=1, retain=True)
        self._esp.on_message = self._on_command
        self._esp.on_connect = lambda client, *_: client.subscribe(
            f"{self._prefix}/switch/+/command", qos=1
        )
        self._own = self._client(host, port, SMOKE_ID, accounts.smoke_password)
        self._thread = threading.Thread(target=self._run, name="demo-sensors", daemon=True)

    @property
    def _prefix(self) -> str:
        return f"esphome/{self.site_id}/{SHED_ID}"

    @staticmethod
    def _client(host: str, port: int, name: str, password: str | None) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name)
        if password is not None:
            client.username_pw_set(name, password)
        client.connect_async(host, port)
        return client

    def _on_command(
        self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage
    ) -> None:
        if message.topic == f"{self._prefix}/switch/port1_relay/command":
            with self._lock:
                self.shed.command(bytes(message.payload))
            self._publish_shed()  # ESPHome reports a switch's new state at once

    def _publish_shed(self) -> None:
        with self._lock:
            states = self.shed.states()
        for entity, value in states.items():
            self._esp.publish(f"{self._prefix}/{entity}/state", value.encode(), qos=0)

    def _publish_smoke(self) -> None:
        now = time.time()
        batch = c.TelemetryBatch(
            ts=now,
            site_id=self.site_id,
            device_id=SMOKE_ID,
            sensor_kind="smoke_detector",
            points=[
                c.TelemetryPoint(metric=m, value=v, ts=now)
                for m, v in self.smoke.readings().items()
            ],
        )
        self._own.publish(str(c.telemetry_topic(self.site_id, SMOKE_ID)), c.encode(batch), qos=1)

    def start(self) -> None:
        """Connect both nodes and start reporting."""
        for client in (self._esp, self._own):
            client.loop_start()
        self._thread.start()

    def _run(self) -> None:
        self._esp.publish(f"{self._prefix}/status", b"online", qos=1, retain=True)
        while not self._stop.wait(self.tick_s):
            with self._lock:
                self.shed.step(self.tick_s)
                self.smoke.step(self.tick_s)
            self._publish_shed()
            self._publish_smoke()

    def stop(self) -> None:
        """Stop reporting and disconnect cleanly (no last will: the demo is over, the node
        is not lost, so no offline ticket)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for client in (self._esp, self._own):
            client.disconnect()
            client.loop_stop()


def start_for_demo(broker_port: int, accounts: SensorAccounts) -> SensorSimulator:
    """Both nodes of the demo's site, reporting to the demo's broker."""
    from guanjia.demo_setup import SITE_ID

    simulator = SensorSimulator("127.0.0.1", broker_port, SITE_ID, accounts)
    simulator.start()
    return simulator
