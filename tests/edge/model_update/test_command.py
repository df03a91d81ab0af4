"""A model_update command's arguments and `refusal`: the artifact the command named, and one
this node's software can run."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.model_update.command import ModelUpdateArgs, refusal
from guanjia.artifacts import ArtifactManifest, ReferenceFrame
from tests.support.artifacts import base_manifest


def _manifest(min_edge_version: str) -> ArtifactManifest:
    return ArtifactManifest(
        model=base_manifest().model_copy(update={"file": "model.onnx", "version": "2.0.0"}),
        size=1,
        min_edge_version=min_edge_version,
        created=0,
        key_id="0" * 16,
        reference=[ReferenceFrame(file="frames/000.jpg", sha256="0" * 64, size=1, detections=[])],
    )


@pytest.mark.parametrize(
    ("name", "version", "software", "needs", "why"),
    [
        ("yolox_nano", "2.0.0", "0.3.0", "0.3", None),
        ("yolox_nano", "2.0.0", "1.0", "0.3.1", None),
        ("yolox_nano", "2.0.1", "0.3.0", "0.1", "artifact is yolox_nano 2.0.0, the command says"),
        ("other", "2.0.0", "0.3.0", "0.1", "the command says other 2.0.0"),
        ("yolox_nano", "2.0.0", "0.2.9", "0.3", "needs node software 0.3, this node runs 0.2.9"),
    ],
)
def test_refusal(name: str, version: str, software: str, needs: str, why: str | None) -> None:
    got = refusal(_manifest(needs), name, version, software)
    if why is None:
        assert got is None
    else:
        assert got is not None
        assert why in got


def test_an_install_names_everything_it_fetches() -> None:
    with pytest.raises(ValidationError, match="install needs url, size, name and version"):
        ModelUpdateArgs.model_validate({"sha256": "a" * 64, "url": "http://gw/x"})
    assert ModelUpdateArgs.model_validate({"action": "cancel", "sha256": "a" * 64}).url is None
