"""Egress guard: which URLs the hub may call (partner webhooks, token endpoints, JWKS, OIDC).

A server-side request forgery (SSRF) guard. The caller gives the policy (connectors never read
the hub's settings): in production only ``https`` and only public addresses; in development
also ``http`` and private or loopback addresses, because the simulators listen on plain-http
loopback. URLs with credentials (``user:pass@``) are always refused, and no guarded client
follows a redirect.

Checks happen three times: when a URL is configured (``check_url``), before every request
(``request_hook``, an httpx event hook) and, in production, when a connection is opened
(``guarded_transport``). The last one closes DNS rebinding: a host that resolves to a public
address when the hook checks it and to ``127.0.0.1`` a moment later when httpx connects. The
transport resolves the name once, checks every address and connects to the checked address
itself; TLS still verifies the certificate against the host name. Residual risk: requests sent
through an outbound proxy (``HTTPS_PROXY``) are resolved by the proxy, so only the hook's check
applies to them; the proxy must enforce the same rules.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host, port -> the addresses the host resolves to.
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")
_FLAGS = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
)


class EgressRefused(httpx.RequestError):
    """A destination the policy forbids.

    An ``httpx.RequestError``, so every caller that already treats an unreachable partner or
    provider as a (transient) network failure treats a refused destination the same way.
    """


@dataclass(frozen=True)
class EgressPolicy:
    """Allowed URL schemes and whether private, loopback and link-local addresses are allowed."""

    schemes: frozenset[str] = field(default_factory=lambda: frozenset({"https"}))
    allow_private: bool = False

    @classmethod
    def for_profile(cls, profile: str) -> EgressPolicy:
        """Production: https to public addresses only; development: also http and loopback."""
        if profile == "production":
            return cls()
        return cls(schemes=frozenset({"http", "https"}), allow_private=True)


PRODUCTION = EgressPolicy.for_profile("production")
DEVELOPMENT = EgressPolicy.for_profile("development")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressRefused(f"cannot resolve host {host!r}") from exc
    return [str(info[4][0]) for info in infos]


def check_url(url: str | httpx.URL, policy: EgressPolicy, resolve: Resolver | None = None) -> None:
    """Raise EgressRefused unless the policy allows calling ``url``.

    Without ``resolve`` only the URL itself is checked (scheme, credentials, literal IP
    addresses); with it, every address the host resolves to is checked as well.
    """
    parsed = _parse(url)
    if parsed.scheme not in policy.schemes:
        allowed = ", ".join(sorted(policy.schemes))
        raise EgressRefused(f"scheme {parsed.scheme or '(none)'!r} not allowed (only {allowed})")
    if parsed.userinfo:
        raise EgressRefused("URLs with credentials (user:password@) are not allowed")
    if not parsed.host:
        raise EgressRefused("URL has no host")
    if policy.allow_private:
        return
    literal = _literal_address(parsed.host)
    if literal is not None:
        _check_address(literal)
    elif resolve is not None:
        for address in resolve(parsed.host, parsed.port or _default_port(parsed.scheme)):
            _check_address(ipaddress.ip_address(address))


def refusal(address: IPAddress) -> str | None:
    """Why the hub must not connect to ``address`` in production, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal(embedded)
            return f"embeds {embedded}, {reason}" if reason else None
        if address.is_site_local:
            return "site-local"
    for flag, reason in _FLAGS:
        if getattr(address, flag):
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


def request_hook(
    policy: EgressPolicy, resolve: Resolver = system_resolver
) -> Callable[[httpx.Request], None]:
    """An httpx ``request`` event hook that checks every request before it is sent."""

    def hook(request: httpx.Request) -> None:
        try:
            check_url(request.url, policy, resolve)
        except EgressRefused as exc:
            raise EgressRefused(f"{request.url.host}: {exc}", request=request) from None

    return hook


def guarded_transport(
    policy: EgressPolicy, resolve: Resolver = system_resolver
) -> httpx.HTTPTransport | None:
    """A transport that checks addresses when it connects; None when private ones are allowed."""
    if policy.allow_private:
        return None
    transport = httpx.HTTPTransport()
    pool = transport._pool  # httpx offers no public way to choose the network backend
    pool._network_backend = _CheckedBackend(pool._network_backend, resolve)
    return transport


def client_options(policy: EgressPolicy, resolve: Resolver = system_resolver) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client`` (or authlib's OAuth2Client) that apply the guard."""
    options: dict[str, Any] = {
        "follow_redirects": False,
        "event_hooks": {"request": [request_hook(policy, resolve)]},
    }
    transport = guarded_transport(policy, resolve)
    if transport is not None:
        options["transport"] = transport
    return options


def guarded_client(
    policy: EgressPolicy, resolve: Resolver = system_resolver, **options: Any
) -> httpx.Client:
    """An httpx client that calls only what the policy allows and never follows redirects."""
    return httpx.Client(**{**options, **client_options(policy, resolve)})


class _CheckedBackend(httpcore.NetworkBackend):
    """Resolves once, checks every address, and connects to a checked one (no rebinding)."""

    def __init__(self, inner: httpcore.NetworkBackend, resolve: Resolver) -> None:
        self._inner = inner
        self._resolve = resolve

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        literal = _literal_address(host)
        addresses = (
            [literal] if literal else [ipaddress.ip_address(a) for a in self._resolve(host, port)]
        )
        if not addresses:
            raise EgressRefused(f"host {host!r} has no address")
        for address in addresses:
            _check_address(address)
        # Like socket.create_connection: the addresses in the resolver's order, first that works.
        for address in addresses[:-1]:
            try:
                return self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return self._inner.connect_tcp(
            str(addresses[-1]), port, timeout, local_address, socket_options
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise EgressRefused("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@dataclass(frozen=True)
class _Parts:
    scheme: str
    userinfo: bytes
    host: str
    port: int | None


def _parse(url: str | httpx.URL) -> _Parts:
    # httpx's own parser, so the check sees the host that httpx will connect to.
    if isinstance(url, str) and "\\" in url:
        # Parsers disagree about backslashes; refuse rather than guess which one wins.
        raise EgressRefused("URLs with backslashes are not allowed")
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url.strip())
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, TypeError, UnicodeError) as exc:
        raise EgressRefused("not a valid URL") from exc
    return _Parts(parsed.scheme.lower(), parsed.userinfo, host, parsed.port)


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, including numeric forms like ``2130706433``."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:  # inet_aton accepts what resolvers accept: 127.1, 0x7f000001, 017700000001
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _check_address(address: IPAddress) -> None:
    reason = refusal(address)
    if reason:
        raise EgressRefused(f"address {address} is {reason}")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
