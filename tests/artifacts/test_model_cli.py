"""`guanjia model keygen | sign | verify`: the real model end to end, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.model_dir import default_manifest_path
from guanjia.cli import app
from tests.support.artifacts import PHOTOS, repack


def _one_line_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def signed(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, testdata_images: Path
) -> tuple[Path, Path]:
    """(artifact, public key file) made through the CLI."""
    tmp = tmp_path_factory.mktemp("cli")
    runner = CliRunner()
    key = tmp / "maintainer.key"
    made = runner.invoke(app, ["model", "keygen", str(key)])
    assert made.exit_code == 0, made.output
    assert made.output.startswith("ed25519:")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    out = tmp / "yolox.gjm"
    frames = [arg for name in PHOTOS for arg in ("--frame", str(testdata_images / name))]
    signed = runner.invoke(
        app,
        [
            "model",
            "sign",
            "--model",
            str(model_dir / "yolox_nano.onnx"),
            "--manifest",
            str(default_manifest_path()),
            "--key",
            str(key),
            "--out",
            str(out),
            *frames,
        ],
    )
    assert signed.exit_code == 0, signed.output
    return out, tmp / "maintainer.key.pub"


def test_sign_then_verify_with_self_test(signed: tuple[Path, Path]) -> None:
    artifact, public = signed
    result = CliRunner().invoke(
        app, ["model", "verify", str(artifact), "--public-key-file", str(public), "--self-test"]
    )
    assert result.exit_code == 0, result.output
    assert "signature ok" in result.output
    assert "self-test ok (2 frames" in result.output


def test_verify_refusals_are_one_line(signed: tuple[Path, Path], tmp_path: Path) -> None:
    artifact, public = signed
    runner = CliRunner()
    other = tmp_path / "other.key"
    runner.invoke(app, ["model", "keygen", str(other)])
    wrong = runner.invoke(
        app, ["model", "verify", str(artifact), "--public-key-file", f"{other}.pub"]
    )
    _one_line_error(wrong, str(artifact), "signature does not verify")

    def flip(name: str, data: bytes) -> bytes:
        return data[:5000] + bytes([data[5000] ^ 1]) + data[5001:] if name == "model.onnx" else data

    tampered = repack(artifact, tmp_path / "t.gjm", flip)
    bad = runner.invoke(app, ["model", "verify", str(tampered), "--public-key-file", str(public)])
    _one_line_error(bad, "model.onnx has sha256")
    unsigned = repack(artifact, tmp_path / "u.gjm", lambda n, d: None if n == "artifact.sig" else d)
    bad = runner.invoke(app, ["model", "verify", str(unsigned), "--public-key-file", str(public)])
    _one_line_error(bad, "unsigned artifact")
    _one_line_error(runner.invoke(app, ["model", "verify", str(artifact)]), "--public-key")
    _one_line_error(
        runner.invoke(app, ["model", "verify", str(artifact), "--public-key", "ssh-rsa AAA"]),
        "--public-key",
        "ed25519:",
    )
    _one_line_error(
        runner.invoke(
            app, ["model", "verify", str(tmp_path / "none.gjm"), "--public-key-file", str(public)]
        ),
        "none.gjm",
    )


def test_keygen_refuses_to_overwrite_and_sign_checks_inputs(
    tmp_path: Path, model_dir: Path, testdata_images: Path
) -> None:
    runner = CliRunner()
    key = tmp_path / "k"
    assert runner.invoke(app, ["model", "keygen", str(key)]).exit_code == 0
    _one_line_error(runner.invoke(app, ["model", "keygen", str(key)]), "refusing to overwrite")
    base = [
        "model",
        "sign",
        "--key",
        str(key),
        "--out",
        str(tmp_path / "o.gjm"),
        "--frame",
        str(testdata_images / PHOTOS[0]),
    ]
    # The manifest names the real weights' sha256; other bytes are refused.
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"x")
    _one_line_error(
        runner.invoke(
            app, [*base, "--model", str(fake), "--manifest", str(default_manifest_path())]
        ),
        "sha256",
    )
    _one_line_error(
        runner.invoke(
            app,
            [
                *base,
                "--model",
                str(model_dir / "yolox_nano.onnx"),
                "--manifest",
                str(tmp_path / "missing.json"),
            ],
        ),
        "missing.json",
    )
    _one_line_error(
        runner.invoke(
            app,
            [
                "model",
                "sign",
                "--key",
                str(tmp_path / "nokey"),
                "--out",
                "x",
                "--frame",
                "f.jpg",
                "--model",
                "m",
                "--manifest",
                str(default_manifest_path()),
            ],
        ),
        "nokey",
    )


def test_publish_errors_are_one_line(
    signed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.broker import free_port

    artifact, _ = signed
    runner = CliRunner()
    monkeypatch.delenv("GUANJIA_TOKEN", raising=False)
    base = ["model", "publish", str(artifact), "--gateway", "http://127.0.0.1:1"]
    _one_line_error(runner.invoke(app, base), "$GUANJIA_TOKEN")
    monkeypatch.setenv("GUANJIA_TOKEN", "t")
    _one_line_error(
        runner.invoke(app, ["model", "publish", str(artifact), "--gateway", "ftp://x"]),
        "--gateway",
    )
    nobody = f"http://127.0.0.1:{free_port()}"
    _one_line_error(
        runner.invoke(app, ["model", "publish", str(artifact), "--gateway", nobody]),
        "--gateway",
        nobody,
    )
