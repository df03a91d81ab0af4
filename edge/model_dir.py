"""Where the detector weights live.

An explicit path, else $GUANJIA_MODEL_DIR, else ../shared/models beside the checkout, else the
user cache `guanjia model fetch` downloads into.

Weights are never committed; the manifest (which names the weights file and its sha256) is,
under ``models/``. `resolve_model_dir` fails with a message that says where it looked.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "GUANJIA_MODEL_DIR"
DEFAULT_WEIGHTS = "yolox_nano.onnx"
_REPO_ROOT = Path(__file__).resolve().parent.parent


class ModelDirError(FileNotFoundError):
    """No directory with the model weights was found; the message lists where we looked."""


def default_manifest_path() -> Path:
    """The manifest of the default model: models/ in a checkout, else the copy in the wheel."""
    name = "yolox_nano.manifest.json"
    checkout = _REPO_ROOT / "models" / name
    return checkout if checkout.is_file() else Path(__file__).resolve().parent / "manifests" / name


def user_cache_models() -> Path | None:
    """Where `guanjia model fetch` downloads models: ``$GUANJIA_CACHE_DIR/models``, else the
    platform's user cache (``~/.cache/guanjia/models``); None without platformdirs."""
    configured = os.environ.get("GUANJIA_CACHE_DIR")
    if configured:
        return Path(configured) / "models"
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        return None
    return Path(user_cache_dir("guanjia")) / "models"


def resolve_model_dir(explicit: Path | None, *, weights: str = DEFAULT_WEIGHTS) -> Path:
    """The directory that holds `weights`.

    Order: `explicit` if given (no fallback: a wrong explicit path is an error, not a surprise),
    else the ``GUANJIA_MODEL_DIR`` environment variable, else ``../shared/models`` beside the
    checkout, else the user cache that `guanjia model fetch` downloads into. Raises
    `ModelDirError` naming the path and the source of the choice.
    """
    if explicit is not None:
        candidate, how = Path(explicit), "--model-dir"
    elif os.environ.get(ENV_VAR):
        candidate, how = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        candidate, how = _REPO_ROOT.parent / "shared" / "models", "default ../shared/models"
        cached = user_cache_models()
        if not (candidate / weights).is_file() and cached is not None:
            if (cached / weights).is_file():
                return cached  # where `guanjia model fetch` put it
            candidate, how = cached, "the user cache; run `guanjia model fetch`"
    if not candidate.is_dir():
        raise ModelDirError(f"model directory {candidate} (from {how}) does not exist")
    if not (candidate / weights).is_file():
        raise ModelDirError(
            f"model weights {weights} not found in {candidate} (from {how}); "
            "run `guanjia model fetch` (or download them as described in models/)"
        )
    return candidate
