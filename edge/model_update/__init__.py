"""The edge model updater: download, verify, self-test, switch, probation, rollback.

``model_update`` commands start a job (`updater.ModelUpdater`); its state lives on disk
(`state`), so a node killed at any step resumes or falls back to its last known-good model
when it starts again. See docs/models.md for the states and what each one means.
"""
