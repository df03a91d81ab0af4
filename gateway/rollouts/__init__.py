"""Staged model rollouts: pure planning (`plan`), signed download links (`links`), and the
periodic step that applies plans and sends ``model_update`` commands (`service`)."""
