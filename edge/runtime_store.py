"""Where an applied runtime config survives a restart: ``data_dir/runtime_config.json``.

A ``config`` command replaces the node's `RuntimeConfig`; the applied one is written atomically
and wins over NODE.yaml's runtime part on the next start, until NODE.yaml's own
`config_version` changes (an operator edited the file on purpose).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pydantic import ValidationError

from edge.node_config import NodeConfig, RuntimeConfig

log = logging.getLogger(__name__)

RUNTIME_FILE = "runtime_config.json"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself must survive a power cut
    finally:
        os.close(fd)


def load_runtime(config: NodeConfig) -> RuntimeConfig:
    """The applied runtime config from data_dir, unless NODE.yaml's version moved on."""
    path = config.data_dir / RUNTIME_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("base_version") == config.config_version:
            return RuntimeConfig.model_validate(stored["runtime"])
        log.info("NODE.yaml config_version changed: ignoring the applied config in %s", path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, ValidationError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
    return config.runtime


def save_runtime(config: NodeConfig, runtime: RuntimeConfig) -> None:
    """Persist an applied runtime config atomically (tmp file, fsync, rename, fsync dir)."""
    body = {"base_version": config.config_version, "runtime": runtime.model_dump(mode="json")}
    _write_atomically(config.data_dir / RUNTIME_FILE, json.dumps(body, indent=2).encode())
