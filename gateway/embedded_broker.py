"""The embedded MQTT broker: amqtt in a thread of this process, for a machine without Mosquitto.

It reads the very files provisioning writes for Mosquitto (`gateway.provisioning`): the
password file (``user:$7$…`` PBKDF2-SHA512 hashes) and the ACL (``user`` blocks of ``topic
read|write|readwrite`` patterns). So `guanjia device add` provisions both brokers the same
way, and the same device-cannot-speak-as-another guarantee holds: a device may publish only
under its own prefix and read only its own commands and acks. Both files are re-read when
they change (Mosquitto needs a SIGHUP), checked at every CONNECT.

What differs from the Mosquitto path (docs/embedded-broker.md):

- MQTT 3.1.1 only. Clients must connect with ``protocol: "3.1.1"``: no session expiry (a
  persistent session lives until the broker stops, in memory), no PUBACK reason codes (a
  publish the ACL refuses is acknowledged and dropped, so an edge node's `publish_now` to
  a controller topic it was never granted reports success), no retain-as-published or
  retain-handling subscription options, no shared subscriptions.
- `use_username_as_clientid` is enforced by refusing a CONNECT whose client id is not its
  username. amqtt handles a clean-session CONNECT (dropping the old session) and a
  take-over before it authenticates, so a client that knows another's client id can
  disconnect it even with a wrong password: the embedded broker therefore listens on
  loopback only and is meant for one machine (the demo, development). Mosquitto stays the
  production broker.
- Nothing is persisted: a broker restart loses sessions and queued messages (the edge's
  outbox and end-to-end Acks still make delivery exactly-once at the gateway).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

log = logging.getLogger(__name__)

PROTOCOL = "3.1.1"
"""The only MQTT version the embedded broker speaks."""


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker cannot start; the message says why."""


# -- the two files, Mosquitto's format -----------------------------------------------------


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches a Mosquitto ``$7$`` (PBKDF2-SHA512) hash."""
    parts = stored.split("$")
    # "$7$iterations$salt$digest" splits into ["", "7", iterations, salt, digest].
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def parse_password_file(text: str) -> dict[str, str]:
    """username → hash, from a Mosquitto password file."""
    users = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and ":" in line:
            user, stored = line.split(":", 1)
            users[user] = stored
    return users


@dataclass(frozen=True)
class Rules:
    """One user's ACL: topic patterns it may read and write."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


def parse_acl(text: str) -> dict[str, Rules]:
    """username → Rules, from a Mosquitto ACL of ``user`` blocks (what provisioning writes).

    Lines before any ``user`` (Mosquitto's anonymous rules) and ``pattern`` lines are
    ignored: provisioning writes neither, and ignoring a rule only ever denies.
    """
    reads: dict[str, list[str]] = {}
    writes: dict[str, list[str]] = {}
    user: str | None = None
    for raw in text.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user" and len(words) == 2:
            user = words[1]
            reads.setdefault(user, [])
            writes.setdefault(user, [])
        elif words[0] == "topic" and user is not None and len(words) in (2, 3):
            access, pattern = ("readwrite", words[1]) if len(words) == 2 else words[1:]
            if access in ("read", "readwrite"):
                reads[user].append(pattern)
            if access in ("write", "readwrite"):
                writes[user].append(pattern)
    return {u: Rules(tuple(reads[u]), tuple(writes[u])) for u in reads}


def topic_matches(topic: str, pattern: str) -> bool:
    """MQTT matching of a concrete `topic` against a `pattern` with ``+`` and ``#``."""
    levels, wanted = topic.split("/"), pattern.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels) or (part not in ("+", levels[i])):
            return False
    return len(levels) == len(wanted)


def filter_covered(requested: str, pattern: str) -> bool:
    """Whether a subscription filter asks for nothing beyond `pattern` (Mosquitto's check of
    a SUBSCRIBE: a wildcard in the filter must be matched by the same or a wider one)."""
    levels, wanted = requested.split("/"), pattern.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels):
            return False
        if part == "+":
            if levels[i] == "#":
                return False
            continue
        if levels[i] != part:
            return False
    return len(levels) == len(wanted)


@dataclass
class _Watched:
    """A file parsed again whenever its mtime or size changes."""

    path: Path
    stamp: tuple[int, int] | None = None

    def changed(self) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return self.stamp is not None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        return True


@dataclass
class Accounts:
    """The password file and ACL, re-read when either changes."""

    passwd_path: Path
    acl_path: Path
    users: dict[str, str] = field(default_factory=dict)
    rules: dict[str, Rules] = field(default_factory=dict)
    _files: tuple[_Watched, _Watched] | None = None

    def refresh(self) -> None:
        """Re-read whichever file changed since the last look (unreadable: nobody gets in)."""
        if self._files is None:
            self._files = (_Watched(self.passwd_path), _Watched(self.acl_path))
        passwd, acl = self._files
        if passwd.changed():
            try:
                self.users = parse_password_file(self.passwd_path.read_text())
            except OSError as exc:
                log.error("cannot read the password file %s: %s", self.passwd_path, exc)
                self.users = {}
        if acl.changed():
            try:
                self.rules = parse_acl(self.acl_path.read_text())
            except OSError as exc:
                log.error("cannot read the ACL %s: %s", self.acl_path, exc)
                self.rules = {}

    def login(self, username: str | None, password: str | None, client_id: str | None) -> bool:
        """Whether this CONNECT may in: a known user, the right password, client id = user."""
        self.refresh()
        if not username or password is None:
            return False
        stored = self.users.get(username)
        if stored is None or not verify_password(password, stored):
            return False
        # Mosquitto's use_username_as_clientid replaces the client id; amqtt cannot, so a
        # client id that is not the username is refused (no login takes another's session).
        return client_id == username

    def allowed(self, username: str | None, topic: str, action: Action) -> bool:
        """The ACL's verdict for one publish, subscribe or delivery."""
        rules = self.rules.get(username or "")
        if rules is None:
            return False
        if action is Action.PUBLISH:
            return any(topic_matches(topic, p) for p in rules.write)
        if action is Action.SUBSCRIBE:
            return any(filter_covered(topic, p) for p in rules.read)
        return any(topic_matches(topic, p) for p in rules.read)


# -- amqtt plugins -------------------------------------------------------------------------

_ACCOUNTS: dict[tuple[str, str], Accounts] = {}
_ACCOUNTS_LOCK = threading.Lock()


def _accounts(passwd_file: str, acl_file: str) -> Accounts:
    # One parsed copy per pair of files, shared by the auth and the topic plugin.
    with _ACCOUNTS_LOCK:
        key = (passwd_file, acl_file)
        if key not in _ACCOUNTS:
            _ACCOUNTS[key] = Accounts(Path(passwd_file), Path(acl_file))
        return _ACCOUNTS[key]


class MosquittoFilesAuth(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """amqtt authentication from Mosquitto's password file (``$7$`` hashes)."""

    @dataclass
    class Config:
        """Where provisioning wrote the two files."""

        passwd_file: str = ""
        acl_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._accounts = _accounts(self.config.passwd_file, self.config.acl_file)

    async def authenticate(self, *, session: Session) -> bool | None:
        """True only for a provisioned account whose client id is its username and whose
        last will, if any, is on a topic it may publish to (Mosquitto 2 refuses such a
        CONNECT too: amqtt sends a will without the publish check)."""
        ok = self._accounts.login(session.username, session.password, session.client_id)
        if ok and session.will_flag:
            ok = self._accounts.allowed(session.username, session.will_topic or "", Action.PUBLISH)
        if not ok:
            # amqtt has already copied this CONNECT's will into the existing session of its
            # client id, and a take-over then ends that session as if it failed, which sends
            # the will: a refused CONNECT must leave none behind.
            session.will_flag = False
            log.warning(
                "refused the login of %r (client id %r)", session.username, session.client_id
            )
        return ok


class MosquittoFilesAcl(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """amqtt topic filtering from Mosquitto's ACL file (publish, subscribe and delivery)."""

    @dataclass
    class Config:
        """Where provisioning wrote the two files."""

        passwd_file: str = ""
        acl_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._accounts = _accounts(self.config.passwd_file, self.config.acl_file)

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        """The ACL's verdict; refused publishes are logged like Mosquitto's denials."""
        if session is None or topic is None or action is None:
            return False
        ok = self._accounts.allowed(session.username, topic, action)
        if not ok and action is not Action.RECEIVE:
            log.warning("denied %s of %r to %s", action.value, topic, session.username)
        return ok


# -- running it ----------------------------------------------------------------------------


def broker_config(host: str, port: int, passwd_file: Path, acl_file: Path) -> dict[str, Any]:
    """amqtt's configuration: one loopback TCP listener and our two plugins, nothing else."""
    files = {"passwd_file": str(passwd_file), "acl_file": str(acl_file)}
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            f"{__name__}.MosquittoFilesAuth": files,
            f"{__name__}.MosquittoFilesAcl": files,
        },
    }


def check_loopback(host: str) -> None:
    """The embedded broker listens on loopback only (see the module docstring)."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise EmbeddedBrokerError(
            f"{host}: the embedded broker listens on loopback only (127.0.0.1); use "
            "Mosquitto to serve other machines"
        )


class EmbeddedBroker:
    """amqtt on its own event loop in a daemon thread; `start` returns once it listens."""

    def __init__(self, port: int, passwd_file: Path, acl_file: Path, host: str = "127.0.0.1"):
        check_loopback(host)
        for path in (passwd_file, acl_file):
            if not path.is_file():
                raise EmbeddedBrokerError(f"{path}: no such file (provision a device first)")
        self.host, self.port = host, port
        self._config = broker_config(host, port, passwd_file, acl_file)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """mqtt://host:port."""
        return f"mqtt://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        try:
            broker = Broker(self._config, loop=self._loop)
            await broker.start()
        except Exception as exc:  # handed to the starting thread as one error
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stopped.wait()
        await broker.shutdown()

    def start(self, timeout: float = 10.0) -> None:
        """Start listening; EmbeddedBrokerError if it cannot (port taken …)."""
        # amqtt logs every connection at INFO and some protocol noise at WARNING.
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        logging.getLogger("transitions").setLevel(logging.WARNING)  # amqtt's state machines
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EmbeddedBrokerError(f"the embedded broker did not start within {timeout:.0f} s")
        if self._error is not None:
            cause = self._error.__cause__ or self._error
            raise EmbeddedBrokerError(f"cannot listen on {self.host}:{self.port}: {cause}")

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect every client and stop the thread."""
        if self._stopped is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
