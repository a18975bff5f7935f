"""Who asked, from where: the request id and client address that audit events carry."""

from __future__ import annotations

import contextvars
import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    client_ip: str | None = None


_NONE = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "request_context", default=None
)


def current_request_context() -> RequestContext:
    return _current.get() or _NONE


def set_request_context(context: RequestContext) -> contextvars.Token:
    return _current.set(context)


def reset_request_context(token: contextvars.Token) -> None:
    _current.reset(token)


def normalise_client_ip(value: str | None) -> str | None:
    """The address exactly as PostgreSQL's inet column gives it back (what the audit chain
    hashes must be what it stores), or None when `value` is not an IP address.

    An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d) is that IPv4 address; a
    zone (%eth0) is dropped, as inet has none.
    """
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # without a zone
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        number = int(address)
        # PostgreSQL writes an IPv4-compatible address (96 zero bits, then a word that is
        # not zero) in dotted form, as BIND's inet_ntop does; Python does not.
        if number >> 32 == 0 and number >> 16:
            return "::" + str(ipaddress.IPv4Address(number))
    return str(address)
