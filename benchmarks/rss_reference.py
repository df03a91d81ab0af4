"""The bare reference for `benchmarks.gateway_rss`: the same registry and stream, nothing else.

    python -m benchmarks.rss_reference DB_FILE HOST PORT SITE

Loads every row of the gateway's `devices` table (stdlib sqlite3) into a dict, holds one MQTT
connection subscribed to the site's heartbeats (paho) and, per heartbeat, parses the JSON and
records the device's last-seen time in that dict: what any process must hold to know 10,000
devices' state, without a web server, an ORM, validation or tickets. Prints ``ready`` once
subscribed and ``applied N`` when terminated (SIGTERM).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    db_file, host, port, site = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    db = sqlite3.connect(Path(db_file))
    registry = {str(row[0]): list(row) for row in db.execute("SELECT * FROM devices")}
    db.close()
    last_seen: dict[str, float] = {}
    applied = 0
    stop = threading.Event()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal applied
        beat = json.loads(message.payload)
        device = str(beat.get("device_id"))
        if device in registry:
            last_seen[device] = float(beat.get("ts", 0.0))
            applied += 1

    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="rss-reference")
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(host, port)
    client.loop_start()
    client.subscribe(f"guanjia/v1/{site}/+/heartbeat", qos=1)
    if not subscribed.wait(10):
        raise SystemExit("error: rss_reference: no SUBACK from the broker")

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    print(f"ready {len(registry)}", flush=True)
    stop.wait()
    client.loop_stop()
    print(f"applied {applied}", flush=True)


if __name__ == "__main__":
    main()
