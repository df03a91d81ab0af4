"""A stand-in edge process for kill -9 tests: the real Uplink fed with contract-built events.

    python -m tests.edge.uplink.node_driver --port P --site S --db D [--events N] [--drain]

Prints ``queued N`` once N events are durable in the outbox, ``connected`` when the link is
up, and with ``--drain`` exits 0 after the outbox is empty (clean stop). Otherwise it runs until
killed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edge.mqtt_link import LinkOptions
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.edge.uplink.support import DEVICE, make_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument("--keepalive", type=int, default=5)
    parser.add_argument("--drain", action="store_true")
    args = parser.parse_args(argv)

    outbox = Outbox(args.db)
    options = LinkOptions(
        host="127.0.0.1",
        port=args.port,
        site_id=args.site,
        device_id=DEVICE,
        software_version="0.1.0",
        keepalive_s=args.keepalive,
        reconnect_min_s=1,
        reconnect_max_s=1,
        inflight=32,
    )
    uplink = Uplink(options, outbox)
    uplink.start()
    for index in range(args.events):
        event, jpeg = make_event(args.site, index, snapshot=index % 10 == 0)
        uplink.send_event(event, jpeg)
    print(f"queued {args.events}", flush=True)
    announced = False
    while True:
        if uplink.link.connected and not announced:
            print("connected", flush=True)
            announced = True
        if args.drain and announced and outbox.stats().depth == 0:
            uplink.stop()
            outbox.close()
            print("drained", flush=True)
            return 0
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
