"""Fixtures of the artifact tests: a key and a real signed artifact (tests.support)."""

from tests.support.artifact_fixtures import good_detector, real_artifact, signing_key

__all__ = ["good_detector", "real_artifact", "signing_key"]
