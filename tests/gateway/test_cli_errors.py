"""Every bad input to `guanjia gateway run`, `user-add` and `device list` is one `error:`
line naming the setting or option and what is allowed: no traceback, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import last_seen

SECRET = "a-secret-long-enough-0123456789abcdef"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUANJIA_GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "guanjia", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "error: GUANJIA_GATEWAY_JWT_SECRET: required unless demo"),
        (
            {"GUANJIA_GATEWAY_JWT_SECRET": SECRET, "GUANJIA_GATEWAY_MQTT__PORT": "abc"},
            "error: GUANJIA_GATEWAY_MQTT__PORT: Input should be a valid integer",
        ),
        (
            {"GUANJIA_GATEWAY_JWT_SECRET": SECRET, "GUANJIA_GATEWAY_MQTT_PORT": "1883"},
            "error: GUANJIA_GATEWAY_MQTT_PORT: unknown setting (the settings are listed in "
            "docs/gateway-settings.md)",
        ),
        (
            {"GUANJIA_GATEWAY_JWT_SECRET": SECRET, "GUANJIA_GATEWAY_MQTT__PROT": "1883"},
            "error: GUANJIA_GATEWAY_MQTT__PROT: unknown setting",
        ),
        (
            {"GUANJIA_GATEWAY_JWT_SECRET": SECRET, "GUANJIA_GATEWAY_POLICIES": "{bad"},
            "error: GUANJIA_GATEWAY_POLICIES: must be JSON",
        ),
        (
            {"GUANJIA_GATEWAY_JWT_SECRET": SECRET, "GUANJIA_GATEWAY_DATABASE_URL": "nonsense"},
            "error: GUANJIA_GATEWAY_DATABASE_URL: not a database URL; use sqlite:///PATH",
        ),
        (
            {"GUANJIA_GATEWAY_JWT_SECRET": SECRET, "GUANJIA_GATEWAY_DATABASE_URL": "oracle2://x"},
            "error: GUANJIA_GATEWAY_DATABASE_URL: unknown database kind",
        ),
    ],
    ids=["no-secret", "port", "unknown", "unknown-nested", "policies", "url", "dialect"],
)
def test_bad_gateway_setting_is_one_line(env: dict[str, str], expected: str) -> None:
    done = run("gateway", "run", "--port", "1", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(expected)


def test_unknown_key_in_the_env_file_is_named_once(tmp_path: Path) -> None:
    env_file = tmp_path / "gateway.env"
    env_file.write_text(f"GUANJIA_GATEWAY_JWT_SECRET={SECRET}\nGUANJIA_GATEWAY_COLOUR=red\n")
    done = run("gateway", "run", "--env-file", str(env_file))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: GUANJIA_GATEWAY_COLOUR: unknown setting (the settings are listed in "
        "docs/gateway-settings.md)"
    )
    done = run("gateway", "run", "--env-file", str(tmp_path / "missing.env"))
    assert done.stderr.strip() == f"error: --env-file {tmp_path / 'missing.env'}: no such file"


def test_embedded_broker_needs_its_files() -> None:
    done = run("gateway", "run", "--embedded-broker", env={"GUANJIA_GATEWAY_DEMO": "true"})
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: --passwd-file: required with --embedded-broker")


def test_user_add_with_an_unknown_role_is_one_line(tmp_path: Path) -> None:
    done = run(
        "gateway",
        "user-add",
        "bob",
        "--role",
        "boss",
        "--site",
        "s1",
        "--database-url",
        f"sqlite:///{tmp_path / 'g.db'}",
        env={"GUANJIA_NEW_USER_PASSWORD": "long-enough-password"},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --role: 'boss': use one of admin, supervisor, operator, worker"
    )


def test_device_list_on_a_new_database_and_last_seen_words(tmp_path: Path) -> None:
    done = run("device", "list", "--database-url", f"sqlite:///{tmp_path / 'new.db'}")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    now = 1_800_000_000.0
    assert last_seen(None, now) == "never"
    assert last_seen(0.0, now) == "never"
    assert last_seen(now - 12, now) == "12 s ago"
    assert last_seen(now - 190, now) == "3 min ago"
    assert last_seen(now - 5 * 3600 - 5, now) == "5 h ago"
    assert last_seen(now - 3 * 86400, now).count(":") == 1  # a date and a time


def test_gateway_start_is_not_noisy(tmp_path: Path) -> None:
    """No alembic plugin or context lines at start; the server's own lines are there."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "guanjia", "gateway", "run", "--port", "0"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("GUANJIA_GATEWAY_")},
            "GUANJIA_GATEWAY_DEMO": "true",
            "GUANJIA_GATEWAY_INGEST_ENABLED": "false",
            "GUANJIA_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Application startup complete" in line:
                break
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    text = "".join(lines) + rest
    assert "Application startup complete" in text, text
    assert "alembic" not in text, text
