"""Signed artifacts of the real YOLOX-Nano: verify, self-test on real photos, refuse tampering."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from edge.model_update.selftest import SelfTestError, run_self_test
from guanjia.artifacts import (
    ArtifactFormatError,
    ArtifactIntegrityError,
    ArtifactSignatureError,
    SigningKey,
    generate_key,
    parse_public_key,
    read_artifact,
)
from tests.support.artifacts import PHOTOS, base_manifest, repack, sign_real


def test_real_artifact_verifies_and_passes_self_test(
    real_artifact: Path, signing_key: SigningKey, tmp_path: Path
) -> None:
    verified = read_artifact(real_artifact, [signing_key.public], tmp_path / "x")
    assert verified.manifest.name == "yolox_nano"
    assert verified.signed_by.key_id == signing_key.public.key_id
    report = run_self_test(verified)
    assert [f.file for f in report.frames] == ["frames/000.jpg", "frames/001.jpg"]
    # The street photo has cars and a bus the model must find again.
    assert report.frames[0].expected >= 3
    assert all(f.matched == f.expected for f in report.frames)
    assert report.median_ms <= report.budget_ms


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize(
    ("member", "error", "words"),
    [
        ("model.onnx", ArtifactIntegrityError, "model.onnx has sha256"),
        ("frames/001.jpg", ArtifactIntegrityError, "frames/001.jpg has sha256"),
        ("artifact.json", ArtifactSignatureError, "signature does not verify"),
        ("artifact.sig", ArtifactSignatureError, "signature does not verify|not base64"),
    ],
)
def test_one_flipped_byte_is_refused(  # noqa: PLR0917 - pytest parameters
    real_artifact: Path,
    signing_key: SigningKey,
    tmp_path: Path,
    member: str,
    error: type[Exception],
    words: str,
) -> None:
    bad = repack(
        real_artifact,
        tmp_path / "bad.gjm",
        lambda name, data: _flip(data, len(data) // 2) if name == member else data,
    )
    with pytest.raises(error, match=words) as caught:
        read_artifact(bad, [signing_key.public], tmp_path / "x")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "x").exists()  # nothing of a refused artifact is left behind


def test_wrong_key_and_no_key_and_unsigned_are_refused(
    real_artifact: Path, signing_key: SigningKey, tmp_path: Path
) -> None:
    other = generate_key().public
    with pytest.raises(ArtifactSignatureError, match=other.key_id):
        read_artifact(real_artifact, [other], tmp_path / "a")
    with pytest.raises(ArtifactSignatureError, match="no public key is pinned"):
        read_artifact(real_artifact, [], tmp_path / "b")
    unsigned = repack(
        real_artifact, tmp_path / "u.gjm", lambda n, d: None if n == "artifact.sig" else d
    )
    with pytest.raises(ArtifactSignatureError, match="unsigned artifact"):
        read_artifact(unsigned, [signing_key.public], tmp_path / "c")
    # Both keys pinned (a rotation): the right one is found.
    assert read_artifact(real_artifact, [other, signing_key.public], tmp_path / "d")


def test_truncated_artifact_is_refused(
    real_artifact: Path, signing_key: SigningKey, tmp_path: Path
) -> None:
    data = real_artifact.read_bytes()
    cut = tmp_path / "cut.gjm"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactFormatError, match="damaged or truncated"):
        read_artifact(cut, [signing_key.public], tmp_path / "x")
    not_tar = tmp_path / "junk.gjm"
    not_tar.write_bytes(b"MZ" + bytes(2000))
    with pytest.raises(ArtifactFormatError, match="not an artifact"):
        read_artifact(not_tar, [signing_key.public], tmp_path / "y")


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("install.sh", b"#!/bin/sh\nrm -rf /\n"), "'install.sh' is not allowed"),
        (("model.py", b"import os\n"), "'model.py' is not allowed"),
        (("../../escape.jpg", b"x"), "is not allowed"),
        (("/etc/evil", b"x"), "is not allowed"),
        (("frames/../../x.jpg", b"x"), "is not allowed"),
        (_link("frames/009.jpg", "/etc/passwd", tarfile.SYMTYPE), "not a regular file"),
        (_link("frames/009.jpg", "model.onnx", tarfile.LNKTYPE), "not a regular file"),
        (("model.onnx", b"second copy"), "appears twice"),
        (("frames/009.jpg", b"x"), "not named by artifact.json"),
    ],
)
def test_anything_but_the_allowed_members_is_refused(
    real_artifact: Path,
    signing_key: SigningKey,
    tmp_path: Path,
    extra: tarfile.TarInfo | tuple[str, bytes],
    words: str,
) -> None:
    bad = repack(real_artifact, tmp_path / "bad.gjm", lambda n, d: d, extra=[extra])
    dest = tmp_path / "deep" / "x"
    with pytest.raises(ArtifactFormatError, match=words):
        read_artifact(bad, [signing_key.public], dest)
    assert not (tmp_path / "escape.jpg").exists()
    assert not (tmp_path / "deep" / "escape.jpg").exists()


def test_oversized_member_is_refused_before_it_is_read(
    real_artifact: Path, signing_key: SigningKey, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactFormatError, match=r"'model.onnx' is .* bytes; at most 1000"):
        read_artifact(real_artifact, [signing_key.public], tmp_path / "x", max_model_bytes=1000)


def test_manifest_that_does_not_match_the_model_outputs_fails_self_test(
    model_dir: Path,
    testdata_images: Path,
    signing_key: SigningKey,
    good_detector,
    tmp_path: Path,
) -> None:
    # Signed in good faith, but the manifest claims 320x320: the output shape differs.
    spec = base_manifest()
    wrong = spec.model_copy(
        update={"input": spec.input.model_copy(update={"width": 320, "height": 320})}
    )
    out = tmp_path / "wrong.gjm"
    sign_real(
        out,
        signing_key,
        model=model_dir / "yolox_nano.onnx",
        photos=[testdata_images / PHOTOS[0]],
        detections_from=good_detector,
        manifest=wrong,
    )
    verified = read_artifact(out, [signing_key.public], tmp_path / "x")
    with pytest.raises(SelfTestError, match=r"does not load as its manifest says.*shape"):
        run_self_test(verified)


def test_swapped_class_names_fail_self_test(
    model_dir: Path, testdata_images: Path, signing_key: SigningKey, good_detector, tmp_path: Path
) -> None:
    spec = base_manifest()
    names = list(spec.class_names)
    names[2], names[5] = names[5], names[2]  # car <-> bus: the boxes come back mislabelled
    out = tmp_path / "swapped.gjm"
    sign_real(
        out,
        signing_key,
        model=model_dir / "yolox_nano.onnx",
        photos=[testdata_images / PHOTOS[0]],
        detections_from=good_detector,
        manifest=spec.model_copy(update={"class_names": names}),
    )
    verified = read_artifact(out, [signing_key.public], tmp_path / "x")
    with pytest.raises(SelfTestError, match="detections differ from the signed ones"):
        run_self_test(verified)


def test_latency_budget_is_enforced(
    model_dir: Path, testdata_images: Path, signing_key: SigningKey, good_detector, tmp_path: Path
) -> None:
    from guanjia.artifacts import SelfTestSpec

    out = tmp_path / "slow.gjm"
    sign_real(
        out,
        signing_key,
        model=model_dir / "yolox_nano.onnx",
        photos=[testdata_images / PHOTOS[0]],
        detections_from=good_detector,
        selftest=SelfTestSpec(latency_budget_ms=0.001),
    )
    verified = read_artifact(out, [signing_key.public], tmp_path / "x")
    with pytest.raises(SelfTestError, match="over the 0 ms budget"):
        run_self_test(verified)


def test_public_key_text_round_trips_and_bad_text_says_what_is_allowed() -> None:
    key = generate_key().public
    assert parse_public_key(key.text()) == key
    with pytest.raises(ValueError, match="ed25519:<base64 of 32 bytes>"):
        parse_public_key("ssh-ed25519 AAAA")
    with pytest.raises(ValueError, match="32 bytes"):
        parse_public_key("ed25519:AAAA")
