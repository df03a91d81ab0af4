"""The demo's broker: a private Mosquitto (a child process) when its binary is found, else
the embedded amqtt broker in the demo's own process. Both read the password file and ACL
that provisioning wrote, so the node and the gateway log in with their own accounts and the
node may speak only under its own topics either way; the embedded one speaks MQTT 3.1.1, so
both links are told to (docs/embedded-broker.md says what that loses)."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from guanjia.demo_children import Child, Children
from guanjia.demo_preflight import BrokerPlan, DemoError

if TYPE_CHECKING:
    from gateway.embedded_broker import EmbeddedBroker


@dataclass
class RunningBroker:
    """The broker the demo started, and the MQTT version its clients must speak."""

    port: int
    protocol: str
    description: str
    child: Child | None = None
    embedded: EmbeddedBroker | None = None

    def stop(self) -> None:
        """Stop the embedded broker (a Mosquitto child is stopped with the other children)."""
        if self.embedded is not None:
            self.embedded.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_broker(
    plan: BrokerPlan, workdir: Path, port: int, children: Children, timeout: float = 10.0
) -> RunningBroker:
    """Start the planned broker on 127.0.0.1:`port` with the accounts in ``workdir/broker``."""
    passwd, acl = workdir / "broker" / "passwd", workdir / "broker" / "acl"
    if plan.kind == "embedded":
        from gateway.embedded_broker import PROTOCOL, EmbeddedBroker, EmbeddedBrokerError

        embedded = EmbeddedBroker(port, passwd, acl)
        try:
            embedded.start()
        except EmbeddedBrokerError as exc:
            raise DemoError(f"the embedded broker: {exc}") from exc
        return RunningBroker(
            port,
            PROTOCOL,
            f"broker: embedded amqtt, MQTT {PROTOCOL}, in this process ({plan.why}) on "
            f"mqtt://127.0.0.1:{port}: per-device accounts, ACL in {acl}",
            embedded=embedded,
        )
    from guanjia.demo_setup import broker_config

    assert plan.mosquitto is not None
    config = workdir / "mosquitto.conf"
    config.write_text(
        broker_config(port=port, passwd_file=passwd, acl_file=acl, as_root=os.geteuid() == 0)
    )
    child = children.spawn(
        "mosquitto", [str(plan.mosquitto), "-c", str(config)], workdir / "logs" / "mosquitto.log"
    )
    deadline = time.monotonic() + timeout
    while not _listening(port):
        if not child.running():
            raise DemoError(
                f"mosquitto exited with status {child.process.returncode}; last lines of "
                f"{child.log_path}:\n{child.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for mosquitto on {port}")
        time.sleep(0.1)
    return RunningBroker(
        port,
        "5",
        f"started mosquitto (pid {child.pid}) on mqtt://127.0.0.1:{port} ({plan.why}): "
        f"per-device accounts, ACL in {acl}",
        child=child,
    )
