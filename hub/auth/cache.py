"""What token validation needs, held in each gateway process: verified tokens, partners, clients.

In the steady state a request's token costs no database round trip: its signature and claims
were checked once (kept under the SHA-256 of the token, until its ``exp`` and never beyond),
and the partner and OAuth client it names are in memory. Entries go when the database changes:

* Services that revoke, rotate, deactivate or change a client, a partner or our signing keys
  call ``drop_after_commit``. Once the transaction commits, this process drops the entries. On
  PostgreSQL the transaction also sends ``NOTIFY hub_auth`` (delivered only if it commits),
  and every gateway process listens on that channel and drops them too.
* An entry loaded while no notification could reach this process (SQLite, or PostgreSQL before
  LISTEN is established or after it broke) is trusted for ``HUB_AUTH_CACHE_SECONDS`` only; one
  loaded while listening for ``NOTIFIED_MAX_AGE_SECONDS``, which bounds a change made behind
  the services' back (plain SQL).
* A load that overlaps a drop is not kept (a generation counter): a load that read the old row
  just before the change committed cannot outlive the notification of that change.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached, sessionmaker

from hub.outbox.notify import subscribe
from hub.partners.models import OAuthClient, Partner

CHANNEL = "hub_auth"
#: How long an entry is trusted while change notifications reach this process.
NOTIFIED_MAX_AGE_SECONDS = 300.0
#: Verified tokens kept at most; beyond, expired ones go first, then all (a flood of tokens).
MAX_TOKENS = 50_000
#: ``session.info`` key of the cache a request's session may use (set by the API's session).
SESSION_KEY = "hub.auth.cache"
_PENDING = "hub.auth.cache.pending"

T = TypeVar("T")

# Set while the event loop validates a request: a load would block the loop (see from_memory).
_MEMORY_ONLY: ContextVar[bool] = ContextVar("hub_auth_memory_only", default=False)


class WouldLoad(Exception):
    """What is asked for is not in memory, and ``from_memory`` is in force."""


@contextmanager
def from_memory() -> Iterator[None]:
    """Within the block, whatever is not in memory raises WouldLoad instead of being read.

    For the event loop: in the steady state a request's token, partner and client are all in
    memory, so checking them there spares two hand-overs to the thread pool; a miss raises
    before anything changed, and the caller repeats the check in a thread.
    """
    reset = _MEMORY_ONLY.set(True)
    try:
        yield
    finally:
        _MEMORY_ONLY.reset(reset)


def may_load() -> None:
    """Raise WouldLoad inside ``from_memory``; called before anything reads or fetches."""
    if _MEMORY_ONLY.get():
        raise WouldLoad


# Every cache of this process, so that a commit anywhere in it reaches them all.
_LIVE: weakref.WeakSet[AuthCache] = weakref.WeakSet()


class AuthCache:
    """Verified tokens and the partner and client state their validation reads."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        unnotified_seconds: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = session_factory
        self._unnotified = unnotified_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._generation = 0
        self.keys_changed = 0  # counts drops of our signing keys (see TokenValidator)
        self._listening = False
        self._listener: threading.Thread | None = None
        self._listen_to: str | None = None
        self._stop = threading.Event()
        self._tokens: dict[bytes, tuple[Any, float, float]] = {}
        self._partners: dict[str, tuple[Partner | None, float]] = {}
        self._clients: dict[str, tuple[bool, float]] = {}
        self._scopes: dict[str, tuple[frozenset[str], float]] = {}
        _LIVE.add(self)
        weakref.finalize(self, self._stop.set)

    # --- tokens --------------------------------------------------------------------------

    def token(self, token: str) -> Any | None:
        """The principal of a token verified before, while its ``exp`` has not come."""
        if self._listen_to is not None and self._listener is None:
            self._start_listener(self._listen_to)
        digest = _digest(token)
        with self._lock:
            entry = self._tokens.get(digest)
        if entry is None:
            return None
        principal, exp, until = entry
        if self._clock() >= exp or self._monotonic() >= until:
            with self._lock:
                self._tokens.pop(digest, None)
            return None
        return principal

    def generation(self) -> int:
        """Read before verifying a token; ``keep_token`` keeps it only if nothing was dropped."""
        with self._lock:
            return self._generation

    def keep_token(
        self, token: str, principal: Any, *, exp: float, generation: int, key_age: float
    ) -> None:
        """Remember a verified token until its ``exp`` (or sooner, see the module docstring).

        ``key_age``: how long the key that verified it is trusted without rereading the keys;
        the token is not trusted longer (a retired key stops verifying within that time).
        """
        until = self._monotonic() + min(self._max_age(), key_age)
        with self._lock:
            if generation != self._generation:
                return
            if len(self._tokens) >= MAX_TOKENS:
                self._forget_expired_tokens()
            self._tokens[_digest(token)] = (principal, exp, until)

    def _forget_expired_tokens(self) -> None:
        now = self._clock()
        self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
        if len(self._tokens) >= MAX_TOKENS:
            self._tokens.clear()

    # --- partners and clients ------------------------------------------------------------

    def partner(self, partner_id: str, session: Session | None = None) -> Partner | None:
        """The partner as a detached snapshot, or None if there is no such partner.

        A miss reads through ``session`` when given: inside a request's transaction, a
        session of our own could wait for the request's own lock (SQLite).
        """
        return self._cached(
            self._partners, partner_id, lambda key: self._load_partner(key, session)
        )

    def client_active(self, client_id: str) -> bool:
        """False once the client is revoked. Clients are revoked, never deleted: an unknown id
        could only come from whoever holds our signing key, and this would not stop them."""
        return self._cached(self._clients, client_id, self._load_client)

    def partner_scopes(self, partner_id: str) -> frozenset[str]:
        """The scopes registered for the partner: those of its clients not revoked."""
        return self._cached(self._scopes, partner_id, self._load_scopes)

    def _cached(self, table: dict[str, tuple[T, float]], key: str, load: Callable[[str], T]) -> T:
        start = self._monotonic()
        with self._lock:
            hit = table.get(key)
            if hit is not None and start < hit[1]:
                return hit[0]
            generation, max_age = self._generation, self._max_age()
        may_load()
        value = load(key)
        with self._lock:
            if generation == self._generation:
                table[key] = (value, start + max_age)
        return value

    def _load_partner(self, partner_id: str, session: Session | None) -> Partner | None:
        if session is not None:
            with session.no_autoflush:
                return _snapshot(session.get(Partner, partner_id))
        with self._factory() as own:
            return _snapshot(own.get(Partner, partner_id))

    def _load_client(self, client_id: str) -> bool:
        with self._factory() as session:
            revoked = session.scalar(
                select(OAuthClient.revoked_at).where(OAuthClient.client_id == client_id)
            )
            return revoked is None

    def _load_scopes(self, partner_id: str) -> frozenset[str]:
        with self._factory() as session:
            rows = session.scalars(
                select(OAuthClient.scopes).where(
                    OAuthClient.partner_id == partner_id, OAuthClient.revoked_at.is_(None)
                )
            )
            return frozenset(scope for row in rows for scope in row.split())

    def _max_age(self) -> float:
        return NOTIFIED_MAX_AGE_SECONDS if self._listening else self._unnotified

    # --- dropping ------------------------------------------------------------------------

    def drop(
        self, *, partners: Iterable[str] = (), clients: Iterable[str] = (), keys: bool = False
    ) -> None:
        """Forget these partners and clients; ``keys``: forget every verified token."""
        with self._lock:
            self._generation += 1
            for partner_id in partners:
                self._partners.pop(partner_id, None)
                self._scopes.pop(partner_id, None)
            client_ids = list(clients)
            for client_id in client_ids:
                self._clients.pop(client_id, None)
            if client_ids:  # a revoked client may take scopes from its partner's registration
                self._scopes.clear()
            if keys:
                self._tokens.clear()
                self.keys_changed += 1

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._generation += 1
            self.keys_changed += 1
            self._tokens.clear()
            self._partners.clear()
            self._clients.clear()
            self._scopes.clear()

    def _on_notify(self, payload: str) -> None:
        try:
            changed = json.loads(payload)
            self.drop(
                partners=changed.get("partners", ()),
                clients=changed.get("clients", ()),
                keys=bool(changed.get("keys")),
            )
        except (ValueError, AttributeError, TypeError):
            self.clear()  # a message we cannot read: assume everything changed

    def _set_listening(self, listening: bool) -> None:
        with self._lock:
            self._listening = listening
        if not listening:
            # What was loaded while listening relies on notifications that may now be lost.
            # (Entries loaded before LISTEN was in place carry the short bound already.)
            self.clear()

    # --- listening -----------------------------------------------------------------------

    def listen(self, database_url: str) -> None:
        """On PostgreSQL, follow ``NOTIFY hub_auth`` (in a thread started on first use)."""
        if database_url.startswith("postgresql"):
            self._listen_to = database_url

    def _start_listener(self, database_url: str) -> None:
        with self._lock:
            if self._listener is not None:
                return
            self._listener = threading.Thread(
                target=_follow,
                args=(database_url, weakref.ref(self), self._stop),
                name="auth-cache-listen",
                daemon=True,
            )
        self._listener.start()

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()


def _follow(
    database_url: str, ref: weakref.ReferenceType[AuthCache], stop: threading.Event
) -> None:
    # Holds the cache only weakly: an app that is gone takes its listener with it.
    def on_message(payload: str) -> None:
        cache = ref()
        if cache is None:
            stop.set()
        else:
            cache._on_notify(payload)

    def on_listening(listening: bool) -> None:
        cache = ref()
        if cache is not None:
            cache._set_listening(listening)

    subscribe(database_url, CHANNEL, on_message, stop, on_listening=on_listening)


def _snapshot(partner: Partner | None) -> Partner | None:
    # A detached copy no session will change: requests merge it in (merge with load=False).
    if partner is None:
        return None
    copy = Partner(**{c.key: getattr(partner, c.key) for c in Partner.__table__.columns})
    make_transient_to_detached(copy)
    return copy


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def of(session: Session) -> AuthCache | None:
    """The cache a request's session may read partners from (None outside the API)."""
    cache = session.info.get(SESSION_KEY)
    return cache if isinstance(cache, AuthCache) else None


def drop_after_commit(
    session: Session,
    *,
    partners: Iterable[str] = (),
    clients: Iterable[str] = (),
    keys: bool = False,
) -> None:
    """Make every gateway process forget these partners and clients once the session commits.

    ``keys``: our signing keys changed, so every verified token is checked again.
    """
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = {"partners": set(), "clients": set(), "keys": False}
        _hook(session)
    pending["partners"].update(partners)
    pending["clients"].update(clients)
    pending["keys"] = pending["keys"] or keys
    if session.get_bind().dialect.name == "postgresql":
        # Delivered at commit, and only then, to every process listening on the channel.
        payload = {"partners": sorted(partners), "clients": sorted(clients), "keys": keys}
        session.execute(select(func.pg_notify(CHANNEL, json.dumps(payload))))


def _hook(session: Session) -> None:
    if session.info.get(f"{_PENDING}.hooked"):
        return
    session.info[f"{_PENDING}.hooked"] = True

    def after_commit(session: Session) -> None:
        pending = session.info.pop(_PENDING, None)
        if pending:
            for cache in list(_LIVE):
                cache.drop(
                    partners=pending["partners"], clients=pending["clients"], keys=pending["keys"]
                )

    def after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            session.info.pop(_PENDING, None)  # rolled back: nothing changed

    event.listen(session, "after_commit", after_commit)
    event.listen(session, "after_transaction_end", after_transaction_end)
