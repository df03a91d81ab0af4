"""docs/gateway-settings.md is what `python -m gateway.settings_doc` renders from the
settings models: a setting added, renamed or re-described without regenerating fails here."""

from __future__ import annotations

from pathlib import Path

from gateway.config import GatewaySettings
from gateway.settings_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway-settings.md"


def test_reference_is_in_sync_with_the_settings() -> None:
    assert DOC.read_text() == render(), (
        "docs/gateway-settings.md is stale: run python -m gateway.settings_doc > "
        "docs/gateway-settings.md"
    )


def test_every_setting_is_listed_with_its_variable() -> None:
    text = render()
    for name in GatewaySettings.model_fields:
        assert f"GUANJIA_GATEWAY_{name.upper()}" in text
    for name in ("HOST", "PORT", "USERNAME", "PASSWORD", "PROTOCOL"):
        assert f"`GUANJIA_GATEWAY_MQTT__{name}`" in text
    assert "/work/" not in text  # no machine-specific paths
