"""Webhook rules without I/O: URL validation and request signatures.

Shared by the queue layer (a task's ``webhook`` field is checked when it is
enqueued), the runtime's deliveries (``nexq.runtime.webhooks``, which check
the resolved address again before each POST and sign each request) and
receivers (``nexq.verify_webhook``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import urllib.parse

WEBHOOK_TYPE = "nexq.webhook"  # the built-in task type of deliveries
WEBHOOK_QUEUE = "_webhooks"  # the queue deliveries run on (every worker serves it)


class WebhookRefused(ValueError):
    """The URL is not an allowed webhook target; says why."""


def blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for what in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{what}"):
            return what.replace("_", "-")
    return None


def check_url(url: str, allow_private: bool = False) -> str:
    """Validate a webhook URL without DNS; returns its host.

    Raises WebhookRefused for a non-http(s) URL, or a literal address (or
    ``localhost``) in a refused range while private targets are not allowed.
    """
    if not isinstance(url, str) or len(url) > 2048:
        raise WebhookRefused("webhook must be an http(s) URL of at most 2048 characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"webhook {url!r} must be an http:// or https:// URL with a host")
    host = parts.hostname
    if allow_private:
        return host
    if host == "localhost" or host.endswith(".localhost"):
        raise WebhookRefused(f"webhook host {host!r} is loopback; refused (allow with NEXQ_WEBHOOK_ALLOW_PRIVATE)")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name: checked again after resolving, before each delivery
    why = blocked(ip)
    if why:
        raise WebhookRefused(f"webhook address {host} is {why}; refused (allow with NEXQ_WEBHOOK_ALLOW_PRIVATE)")
    return host


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers: is ``signature`` right for this body and timestamp?"""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
