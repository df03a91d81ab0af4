"""A minimal edge process for the last-will test: the real Uplink, killed with -9 by the test.

    python -m tests.edge.uplink.node_driver --port P --site S --db D [--keepalive K]

Prints ``connected`` once the link is up, then runs until killed. (The kill -9 outbox test
drives a real ``guanjia edge run``: tests/edge/uplink/test_run_kill.py.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edge.link_options import LinkOptions
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.edge.uplink.support import DEVICE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--keepalive", type=int, default=5)
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
    while not uplink.link.connected:
        time.sleep(0.05)
    print("connected", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
