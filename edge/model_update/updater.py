"""`ModelUpdater`: one model update at a time, every step on disk before it is taken.

    install: downloading → verifying → testing → switching → probation → active
                 └──────────── failed (reason; the running model is untouched)
                                             └─ switching/probation → rolled_back (reason)

Boot (`recover`): a model that has not finished probation is never started again — the node
goes back to the last known-good one and reports ``rolled_back`` — while a job that had not
switched yet resumes where it stopped (the download with Range). ``revert`` (a halted
rollout) undoes the artifact wherever it is; ``cancel`` stops it unless it is already active.
Every transition is reported with a rising ``seq`` through the `report` callback.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from contract import Manifest
from edge.model_update.command import ModelUpdateArgs, Report, refusal
from edge.model_update.download import DownloadError, download
from edge.model_update.probation import HealthSample, ProbationRules, regression
from edge.model_update.selftest import SelfTestError, run_self_test
from edge.model_update.state import (
    Baseline,
    Job,
    ModelSlot,
    Outcome,
    ReportState,
    StateFile,
    UpdaterState,
)
from guanjia.artifacts import ArtifactError, ArtifactManifest, PublicKey, read_artifact

log = logging.getLogger(__name__)


class _StoppedError(Exception):
    """The job was cancelled or reverted while it ran."""


class ModelUpdater:
    """Runs `model_update` jobs for one node (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        trusted: Sequence[PublicKey],
        *,
        software_version: str,
        report: Callable[[Report], None],
        switch: Callable[[ModelSlot | None], None],
        health: Callable[[], HealthSample | None] = lambda: None,
        rules: ProbationRules | None = None,
        clock: Callable[[], float] = time.time,
        download_timeout_s: float = 30.0,
        max_model_bytes: int = 256 << 20,
    ) -> None:
        self.files = StateFile(root)
        self.trusted = list(trusted)
        self.software_version = software_version
        self._report = report
        self._switch = switch
        self._health = health
        self._rules = rules or ProbationRules()
        self._clock = clock
        self._timeout = download_timeout_s
        self._max_model = max_model_bytes
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.state: UpdaterState = self.files.load()

    # -- what runs --------------------------------------------------------------------------

    def model_for(self, slot: ModelSlot | None) -> tuple[Manifest, Path] | None:
        """The detector manifest and weights directory of an installed slot."""
        if slot is None:
            return None
        directory = self.files.store_dir(slot.sha256)
        body = (directory / "artifact.json").read_text(encoding="utf-8")
        return ArtifactManifest.model_validate_json(body).model, directory

    def active_model(self) -> tuple[Manifest, Path] | None:
        """What the node should run now; None: the model named in NODE.yaml."""
        with self._lock:
            return self.model_for(self.state.active)

    # -- boot -----------------------------------------------------------------------------

    def recover(self) -> None:
        """At start, before cameras open: fall back to known-good, resume an unswitched job."""
        with self._lock:
            state = self.state
            job = state.job
            if job is not None and job.state in ("switching", "probation"):
                state.active = state.known_good
                self._end(
                    job,
                    "rolled_back",
                    "the node restarted before probation ended: back on the last known-good model",
                )
            elif state.active != state.known_good:
                state.active = state.known_good
                self._save()
            if self.state.job is not None:
                self._start_worker()

    # -- commands -------------------------------------------------------------------------

    def command(self, command_id: str, args: ModelUpdateArgs) -> Report:
        """Start, revert or cancel; the Report is the command's own answer."""
        with self._lock:
            if args.action == "install":
                return self._install(command_id, args)
            return self._undo(command_id, args.sha256, revert=args.action == "revert")

    def _install(self, command_id: str, args: ModelUpdateArgs) -> Report:
        state, job = self.state, self.state.job
        if job is not None:
            if job.sha256 != args.sha256:
                return self._answer(
                    command_id,
                    args.sha256,
                    "failed",
                    f"busy: installing {job.sha256[:12]} ({job.state})",
                )
            job.command_id = command_id  # a retried command: later reports name it
            if args.url is not None:
                # A new rollout of the same artifact comes with a fresh link; the old one
                # may have expired with its rollout's command (`_download` switches over).
                job.url = args.url
            self._save()
            return self._as_report(job, job.state if job.state != "switching" else "probation")
        if state.known_good is not None and state.known_good.sha256 == args.sha256:
            state.last = Outcome(command_id=command_id, sha256=args.sha256, state="active", seq=1)
            self._save()
            return self._answer(command_id, args.sha256, "active", None)
        # The validator guarantees these for an install.
        assert args.url is not None
        assert args.size is not None
        assert args.name is not None
        assert args.version is not None
        if args.size > self._max_model + (32 << 20):
            return self._answer(
                command_id,
                args.sha256,
                "failed",
                f"artifact of {args.size} bytes is over this node's limit",
            )
        state.job = Job(
            command_id=command_id,
            sha256=args.sha256,
            url=args.url,
            size=args.size,
            name=args.name,
            version=args.version,
            state="downloading",
            probation_s=args.probation_s,
        )
        self._save()
        self._start_worker()
        return self._as_report(state.job, "downloading")

    def _undo(self, command_id: str, sha: str, *, revert: bool) -> Report:
        state, job = self.state, self.state.job
        if job is not None and job.sha256 == sha:
            job.command_id = command_id
            if job.state in ("switching", "probation"):
                state.active = state.known_good
                self._save()
                self._apply(state.active)
                return self._end(job, "rolled_back", "reverted by the gateway")
            self._stop.set()
            return self._end(job, "cancelled", "cancelled by the gateway before the switch")
        if revert and state.known_good is not None and state.known_good.sha256 == sha:
            state.active = state.known_good = state.previous
            state.previous = None
            state.last = Outcome(
                command_id=command_id,
                sha256=sha,
                state="rolled_back",
                reason="reverted by the gateway",
                seq=1,
            )
            self._save()
            self._apply(state.active)
            return self._answer(command_id, sha, "rolled_back", "reverted by the gateway")
        last = state.last
        if last is not None and last.sha256 == sha:
            return self._answer(command_id, sha, last.state, last.reason)
        return self._answer(command_id, sha, "cancelled", "never installed here")

    # -- the job --------------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._stop = threading.Event()  # a stale worker keeps its own, set, event
        self._worker = threading.Thread(target=self._run, name="model-update", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        try:
            self._steps()
        except _StoppedError:
            log.info("model update stopped")
        except Exception as exc:  # a bug must end the job, not leave it "in progress"
            log.exception("model update failed")
            with self._lock:
                job = self.state.job
                if job is None:
                    return
                if job.state in ("switching", "probation"):
                    # Past the switch point the new model may be running: go back to the
                    # known-good one, never report "unchanged" while it runs on.
                    self.state.active = self.state.known_good
                    self._save()
                    self._apply(self.state.active)
                    self._end(job, "rolled_back", f"error after the switch: {type(exc).__name__}")
                    return
                self._fail(job, f"{type(exc).__name__}: {exc}")

    def _checkpoint(self, job: Job, state: Literal["verifying", "testing", "switching"]) -> Job:
        with self._lock:
            if self.state.job is not job or self._stop.is_set():
                raise _StoppedError
            if job.state != state:
                job.state = state
                if state != "switching":  # not a state the gateway sees: no report
                    job.seq += 1
                self._save()
                if state != "switching":
                    self._emit(self._as_report(job, state))
            return job

    def _steps(self) -> None:
        job = self.state.job
        if job is None:
            return
        part = self.files.part_path(job.sha256)
        if job.state == "downloading":
            if not self._download(job, part):
                return
            self._checkpoint(job, "verifying")
        target = self.files.store_dir(job.sha256)
        if job.state in ("verifying", "testing"):
            shutil.rmtree(target, ignore_errors=True)
            try:
                verified = read_artifact(
                    part, self.trusted, target, max_model_bytes=self._max_model
                )
            except ArtifactError as exc:
                self._locked_fail(job, f"verify: {exc}")
                return
            except OSError as exc:
                self._locked_fail(job, f"verify: cannot read the download: {exc.strerror or exc}")
                return
            problem = refusal(verified.manifest, job.name, job.version, self.software_version)
            if problem:
                self._locked_fail(job, f"verify: {problem}")
                return
            self._checkpoint(job, "testing")
            try:
                result = run_self_test(verified)
            except SelfTestError as exc:
                self._locked_fail(job, f"self-test: {exc}")
                return
            log.info("self-test of %s %s passed: %s", job.name, job.version, result.summary())
            self._checkpoint(job, "switching")
        self._switch_to(job)

    def _download(self, job: Job, part: Path) -> bool:
        """Fetch the artifact into `part`; False when the job failed. A download refused
        after the gateway sent a fresh link meanwhile (`_install`: the same artifact
        commanded again) goes on with that link, resuming where it stopped."""
        while True:
            url = job.url
            try:
                download(
                    url,
                    part,
                    size=job.size,
                    sha256=job.sha256,
                    timeout_s=self._timeout,
                    should_stop=self._stop.is_set,
                )
            except DownloadError as exc:
                if self._stop.is_set():
                    raise _StoppedError from exc
                with self._lock:
                    fresh = job.url != url
                if fresh:
                    log.info("model download: continuing with the fresh link")
                    continue
                self._locked_fail(job, str(exc))
                return False
            return True

    def _switch_to(self, job: Job) -> None:
        with self._lock:
            if self._stop.is_set() or self.state.job is not job:
                raise _StoppedError
            baseline = self._health()
            job.baseline = Baseline(
                fps=None if baseline is None else baseline.fps,
                inference_ms=None if baseline is None else baseline.inference_ms,
            )
            self.state.active = ModelSlot(sha256=job.sha256, name=job.name, version=job.version)
            self._save()  # the switch point: from here a restart goes back to known_good
            try:
                self._switch(self.state.active)
            except Exception as exc:
                log.exception("switching to the new model failed")
                self.state.active = self.state.known_good
                self._save()
                self._apply(self.state.active)
                self._end(job, "rolled_back", f"switch failed: {type(exc).__name__}: {exc}")
                return
            job.state = "probation"
            job.probation_until = self._clock() + job.probation_s
            job.seq += 1
            self._save()
            self._emit(self._as_report(job, "probation"))
        self.tick()

    def tick(self) -> None:
        """Probation: roll back on a regression, confirm when the window ends healthy."""
        with self._lock:
            job = self.state.job
            if job is None or job.state != "probation" or job.probation_until is None:
                return
            base = job.baseline
            baseline = None if base is None else HealthSample(base.fps, base.inference_ms)
            why = regression(baseline, self._health(), self._rules)
            if why is not None:
                self.state.active = self.state.known_good
                self._save()
                self._apply(self.state.active)
                self._end(job, "rolled_back", f"health regressed during probation: {why}")
                return
            if self._clock() < job.probation_until:
                return
            self.state.previous = self.state.known_good
            self.state.known_good = self.state.active
            self._end(job, "active", None)
            self._collect()

    # -- helpers --------------------------------------------------------------------------

    def _apply(self, slot: ModelSlot | None) -> None:
        try:
            self._switch(slot)
        except Exception:
            log.exception("could not reload the known-good model")

    def _locked_fail(self, job: Job, reason: str) -> None:
        with self._lock:
            if self.state.job is not job or self._stop.is_set():
                raise _StoppedError
            self._fail(job, reason)

    def _fail(self, job: Job, reason: str) -> Report:
        log.warning("model update %s failed: %s", job.sha256[:12], reason)
        shutil.rmtree(self.files.store_dir(job.sha256), ignore_errors=True)
        short = reason if len(reason) <= 300 else reason[:299] + "…"
        return self._end(job, "failed", short + "; the running model is unchanged")

    def _end(self, job: Job, state: ReportState, reason: str | None) -> Report:
        job.seq += 1
        self.state.job = None
        self.state.last = Outcome(
            command_id=job.command_id, sha256=job.sha256, state=state, reason=reason, seq=job.seq
        )
        self._save()
        self.files.part_path(job.sha256).unlink(missing_ok=True)
        report = Report(job.command_id, job.sha256, state, job.seq, reason, self.state.active)
        self._emit(report)
        return report

    def _collect(self) -> None:
        keep = {
            s.sha256
            for s in (self.state.active, self.state.known_good, self.state.previous)
            if s is not None
        }
        store = self.files.root / "store"
        if store.is_dir():
            for entry in store.iterdir():
                if entry.name not in keep:
                    shutil.rmtree(entry, ignore_errors=True)

    def _as_report(self, job: Job, state: ReportState) -> Report:
        return Report(job.command_id, job.sha256, state, job.seq, None, self.state.active)

    def _answer(self, command_id: str, sha: str, state: ReportState, reason: str | None) -> Report:
        return Report(command_id, sha, state, 1, reason, self.state.active)

    def _emit(self, report: Report) -> None:
        try:
            self._report(report)
        except Exception:
            log.exception("could not queue the model update report")

    def _save(self) -> None:
        self.files.save(self.state)

    def close(self, timeout: float = 5.0) -> None:
        """Stop a running download (its progress stays on disk for the next start)."""
        self._stop.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
