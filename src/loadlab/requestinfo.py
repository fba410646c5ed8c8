"""What ``GET /request`` reports, built the same way from either framework's Request.

Credentials are masked by the shape of their name, not by a list: a list always misses
one (``X-Auth-Token``, ``X-Amz-Security-Token``, ``Api-Key``, ``X-Vault-Token``,
``?access_token=``...). Any header or query parameter whose name contains one of
``SECRET_WORDS`` is reported as ``***``; an ``Authorization`` header keeps its scheme.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from loadlab.contract import ClientInfo, RequestInfo

SECRET_WORDS = ("token", "secret", "key", "auth", "passw", "pwd", "session", "cookie",
                "credential", "signature", "csrf", "xsrf", "jwt", "private")
_SECRET_NAME = re.compile("|".join(SECRET_WORDS), re.IGNORECASE)
_SCHEMED = {"authorization", "proxy-authorization"}
MASK = "***"


def is_secret(name: str) -> bool:
    """Whether a header or query parameter of this name may carry a credential."""
    return _SECRET_NAME.search(name) is not None


def mask_secret(name: str, value: str) -> str:
    """Keep the scheme of a credential header (``Bearer``), never the credential itself."""
    if not is_secret(name):
        return value
    if name.lower() in _SCHEMED and " " in value.strip():
        return value.strip().split(" ", 1)[0] + " " + MASK
    return MASK


def describe_request(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    cookies: Mapping[str, str],
    client: tuple[str, int | None] | None,
    content_type: str | None,
    content_length: int | None,
) -> RequestInfo:
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(MASK if is_secret(key) else value)
    header_map: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        masked = mask_secret(lower, value)
        header_map[lower] = f"{header_map[lower]}, {masked}" if lower in header_map else masked
    return RequestInfo(
        method=method,
        path=path,
        query=grouped,
        headers=header_map,
        cookies={k: MASK for k in cookies},
        client=ClientInfo(host=client[0] if client else None, port=client[1] if client else None),
        content_type=content_type,
        content_length=content_length,
    )
