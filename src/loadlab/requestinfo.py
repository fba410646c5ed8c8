"""What ``GET /request`` reports, built the same way from either framework's Request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from loadlab.contract import ClientInfo, RequestInfo

_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key"}


def mask_secret(name: str, value: str) -> str:
    """Keep the scheme of a credential header (``Bearer``), never the credential itself."""
    if name not in _SECRET_HEADERS:
        return value
    if name in {"authorization", "proxy-authorization"} and " " in value:
        return value.split(" ", 1)[0] + " ***"
    return "***"


def describe_request(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    cookies: Mapping[str, str],
    client: tuple[str, int] | None,
    content_type: str | None,
    content_length: int | None,
) -> RequestInfo:
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(value)
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
        cookies={k: "***" for k in cookies},
        client=ClientInfo(host=client[0] if client else None, port=client[1] if client else None),
        content_type=content_type,
        content_length=content_length,
    )
