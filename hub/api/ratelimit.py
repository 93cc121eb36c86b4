"""Rate limits and quotas of the partner API, counted in this process's memory.

In-process counting is right for one gateway. With several gateways behind a load balancer,
each keeps its own counts, so a partner may get up to N times each limit; exact global limits
would need a shared store (PostgreSQL or Redis). All counts start afresh when a gateway
restarts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.errors import TooManyRequests
from hub.settings import Settings

Clock = Callable[[], float]
DAY_SECONDS = 86_400
#: Above this many keys, keys whose bucket is full again are forgotten.
MAX_KEYS = 10_000


class Buckets:
    """Token buckets by key: ``per_minute`` tokens, refilled continuously, bursts up to that."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._prune_above = MAX_KEYS

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` has a token; 0 when it has one now (nothing is taken)."""
        with self._lock:
            return self._wait(self._level(key, now))

    def take(self, key: str, now: float) -> float:
        """Take a token: 0 if taken, else the seconds to wait (and nothing is taken)."""
        with self._lock:
            level = self._level(key, now)
            if level < 1.0:
                return self._wait(level)
            self._state[key] = (level - 1.0, now)
            self._prune(now)
            return 0.0

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._state.get(key, (self.capacity, now))
        return min(self.capacity, tokens + max(0.0, now - at) * self.rate)

    def _wait(self, level: float) -> float:
        return 0.0 if level >= 1.0 else (1.0 - level) / self.rate

    def _prune(self, now: float) -> None:
        # Bounded memory when keys are many (e.g. source addresses): a full bucket is the
        # same as no bucket, so forgetting it changes nothing.
        if len(self._state) <= self._prune_above:
            return
        full = [k for k in self._state if self._level(k, now) >= self.capacity]
        for key in full:
            del self._state[key]
        self._prune_above = max(MAX_KEYS, 2 * len(self._state))


class DailyQuota:
    """At most ``per_day`` calls per key and UTC day."""

    def __init__(self, per_day: int) -> None:
        self.per_day = per_day
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, int]] = {}  # key -> (day, count)

    def take(self, key: str, now: float) -> float:
        """Count a call: 0 if within the quota, else the seconds until the next UTC day."""
        day = int(now // DAY_SECONDS)
        with self._lock:
            seen_day, count = self._state.get(key, (day, 0))
            count = count if seen_day == day else 0
            if count >= self.per_day:
                return (day + 1) * DAY_SECONDS - now
            self._state[key] = (day, count + 1)
            return 0.0


@dataclass
class _Window:
    start: float
    count: int = 0


class NotFoundWatch:
    """Counts lookups that found nothing per key, in fixed windows of ``window`` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._state: dict[str, _Window] = {}

    def blocked(self, key: str, now: float) -> float:
        """Seconds until the key's window ends if it used up its misses; else 0."""
        with self._lock:
            current = self._current(key, now)
            if current is None or current.count < self.limit:
                return 0.0
            return current.start + self.window - now

    def missed(self, key: str, now: float) -> bool:
        """Count one miss; True exactly when it uses up the window's allowance."""
        with self._lock:
            current = self._current(key, now) or self._state.setdefault(key, _Window(now))
            if current.count >= self.limit:
                return False
            current.count += 1
            return current.count == self.limit

    def _current(self, key: str, now: float) -> _Window | None:
        found = self._state.get(key)
        if found is not None and now - found.start >= self.window:
            del self._state[key]
            return None
        return found


@dataclass
class Limits:
    """Every limit of one gateway process, by what it protects."""

    api: Buckets
    api_daily: DailyQuota
    tokens: Buckets
    failures: Buckets
    enumeration: NotFoundWatch
    clock: Clock = field(default=time.time)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured in the settings."""
        return cls(
            api=Buckets(settings.rate_limit_api_per_minute),
            api_daily=DailyQuota(settings.rate_limit_api_per_day),
            tokens=Buckets(settings.rate_limit_token_per_minute),
            failures=Buckets(settings.rate_limit_auth_failures_per_minute),
            enumeration=NotFoundWatch(
                settings.enumeration_max_not_found, settings.enumeration_window_seconds
            ),
        )

    def charge_api(self, partner_id: str) -> None:
        """Count one API call of the partner; TooManyRequests when over a limit."""
        now = self.clock()
        wait = self.api.take(partner_id, now)
        if wait:
            raise TooManyRequests("API rate limit of this partner reached", retry_after=wait)
        wait = self.api_daily.take(partner_id, now)
        if wait:
            raise TooManyRequests("daily API quota of this partner used up", retry_after=wait)

    def check_person_lookups(self, partner_id: str) -> None:
        """TooManyRequests while the partner's person lookups are throttled."""
        wait = self.enumeration.blocked(partner_id, self.clock())
        if wait:
            raise TooManyRequests(
                "too many lookups of unknown persons; person lookups are paused", retry_after=wait
            )
