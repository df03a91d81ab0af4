"""The images' Dockerfiles and the gateway image's secrets entrypoint, without a Docker
engine: the source tree each image COPYs really runs its command, nothing pins one CPU
architecture, and the entrypoint turns secret files into settings for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parent.parent / "docker"
REPO = DOCKER.parent
ENTRYPOINT = DOCKER / "gateway" / "secrets-entrypoint.sh"
MULTI_ARCH_BASES = {"python:3.11-slim-bookworm", "python:3.12-slim-bookworm"}
"""Official images published for linux/amd64 and linux/arm64 (among others)."""

IMAGES = {
    "gateway": ["guanjia", "gateway", "run", "--help"],
    "edge": ["guanjia", "edge", "run", "--help"],
}


def _copies(dockerfile: Path) -> list[tuple[str, str]]:
    out = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            out += [(source, dest) for source in sources]
    return out


def _image_tree(dockerfile: Path, root: Path) -> Path:
    """The files the Dockerfile copies into its WORKDIR (/opt/guanjia), laid out in `root`."""
    workdir = root / "opt-guanjia"
    workdir.mkdir(parents=True)
    for source, dest in _copies(dockerfile):
        if dest.startswith("/"):
            continue  # outside the WORKDIR (the entrypoint script)
        target = workdir / dest if dest not in ("./", ".") else workdir / Path(source).name
        src = REPO / source
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
    return workdir


@pytest.mark.parametrize("image", IMAGES)
def test_image_source_tree_runs_its_command(image: str, tmp_path: Path) -> None:
    """Only the COPY'd sources on the path (ahead of this checkout's editable install): the
    `guanjia` command the image runs must import (it used to miss edge/ or gateway/)."""
    tree = _image_tree(DOCKER / image / "Dockerfile", tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    probe = (
        "import sys, guanjia.cli, gateway, edge; "
        "assert all(m.__file__.startswith(sys.argv[1]) for m in (guanjia.cli, gateway, edge)); "
        "sys.argv = sys.argv[2:]; guanjia.cli.main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tree), *IMAGES[image]],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage" in done.stdout


def test_image_tree_check_can_fail(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    text = (DOCKER / "gateway" / "Dockerfile").read_text()
    dockerfile.write_text(
        text.replace("COPY edge ./edge\n", "COPY edge/__init__.py ./edge/__init__.py\n")
    )
    tree = _image_tree(dockerfile, tmp_path / "t")
    done = subprocess.run(
        [sys.executable, "-c", "import guanjia.cli"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    assert "edge.cli" in done.stderr


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_is_multi_arch(image: str) -> None:
    text = (DOCKER / image / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert bases
    assert set(bases) <= MULTI_ARCH_BASES, bases
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue  # comments show the buildx command with both platforms
        assert "--platform" not in line
        assert not re.search(r"\.whl|x86_64|aarch64|amd64|arm64|armv7", line), line


def _entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *command],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **env},
        check=False,
    )


def test_entrypoint_turns_secret_files_into_settings(tmp_path: Path) -> None:
    jwt = tmp_path / "jwt_secret"
    jwt.write_text("s" * 40 + "\n")  # `openssl rand -hex` writes a trailing newline
    mqtt = tmp_path / "mqtt_password"
    mqtt.write_text("broker-pw\n")
    pg = tmp_path / "postgres_password"
    pg.write_text("pg-pw")
    probe = (
        "import os; from gateway.config import load_settings; s = load_settings(); "
        "print(s.signing_key(), s.mqtt.password.get_secret_value(), os.environ['PGPASSWORD'], "
        "[k for k in os.environ if k.endswith('_FILE')])"
    )
    done = _entrypoint(
        {
            "GUANJIA_GATEWAY_JWT_SECRET_FILE": str(jwt),
            "GUANJIA_GATEWAY_MQTT__USERNAME": "gateway-1",
            "GUANJIA_GATEWAY_MQTT__PASSWORD_FILE": str(mqtt),
            "PGPASSWORD_FILE": str(pg),
        },
        sys.executable,
        "-c",
        probe,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["s" * 40, "broker-pw", "pg-pw", "[]"]


def test_entrypoint_missing_secret_file_is_one_line(tmp_path: Path) -> None:
    done = _entrypoint({"GUANJIA_GATEWAY_JWT_SECRET_FILE": str(tmp_path / "missing")}, "true")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: GUANJIA_GATEWAY_JWT_SECRET_FILE: {tmp_path / 'missing'} is not a readable file"
    ]


def test_entrypoint_leaves_other_variables_alone(tmp_path: Path) -> None:
    other = tmp_path / "f"
    other.write_text("x")
    done = _entrypoint({"SOMETHING_FILE": str(other)}, "env")
    assert done.returncode == 0
    assert f"SOMETHING_FILE={other}" in done.stdout
    assert "SOMETHING=" not in done.stdout.replace("SOMETHING_FILE=", "")
