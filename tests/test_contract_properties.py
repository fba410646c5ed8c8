"""Property tests of the core's parsers: any input gives a model or a 4xx, nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadlab import contract

QUERY_MODELS = [contract.IoParams, contract.CpuParams, contract.MixedParams,
                contract.UpstreamParams]
NAMES = st.sampled_from(["ms", "work", "x", "", "MS", "ms\x00"]) | st.text(max_size=8)
VALUES = (st.integers(-10**30, 10**30).map(str) | st.text(max_size=30)
          | st.floats(allow_nan=True).map(str) | st.sampled_from(["", " 1", "1_000", "0x10"]))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)


def _assert_refusal(exc: contract.ContractError) -> None:
    assert 400 <= exc.status < 500
    if exc.status == 422:
        contract.ValidationErrorBody.model_validate(exc.body)
    else:
        contract.ErrorBody.model_validate(exc.body)


@settings(max_examples=200, deadline=None)
@given(model=st.sampled_from(QUERY_MODELS), items=st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_parse_query_gives_model_or_4xx(model: type[contract.QueryModel],
                                        items: list[tuple[str, str]]) -> None:
    try:
        parsed = contract.parse_query(model, items)
    except contract.ContractError as exc:
        _assert_refusal(exc)
        return
    for name, value in parsed.model_dump().items():
        assert 0 <= value <= (contract.MAX_IO_MS if name == "ms" else contract.MAX_CPU_WORK)
        given_values = [v for k, v in items if k == name]
        assert len(given_values) <= 1  # a repeated parameter is never accepted


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=300) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_parse_body_gives_model_or_4xx(raw: bytes) -> None:
    try:
        item = contract.parse_body(contract.EchoItem, raw)
    except contract.ContractError as exc:
        _assert_refusal(exc)
        return
    assert isinstance(item, contract.EchoItem)


# Python and pydantic disagree on whether \x1c-\x1f are whitespace: leave controls out.
TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=48)
PADDED = st.tuples(st.sampled_from(["", " ", "\t", "\n "]), TEXT).map("".join).filter(str.strip)
ITEMS = st.fixed_dictionaries(
    {"name": PADDED,
     "quantity": st.integers(0, 1_000_000),
     "price": st.floats(0, 1e9, allow_nan=False, allow_infinity=False)},
    optional={"tags": st.lists(PADDED, max_size=20)},
)


@settings(max_examples=100, deadline=None)
@given(item=ITEMS)
def test_valid_items_are_normalised(item: dict[str, Any]) -> None:
    result = contract.echo(contract.parse_body(contract.EchoItem, json.dumps(item).encode()))
    assert result.name == item["name"].strip()
    assert result.tags == sorted({t.strip().lower() for t in item.get("tags", [])})
    assert result.total == round(item["quantity"] * item["price"], 2)


@given(sizes=st.lists(st.integers(0, 400_000), max_size=8))
def test_read_limited_stops_at_the_limit(sizes: list[int]) -> None:
    chunks = iter([b"x" * n for n in sizes if n] + [b""])
    if sum(sizes) > contract.MAX_BODY_BYTES:
        with pytest.raises(contract.ContractError) as caught:
            contract.read_limited(lambda _: next(chunks))
        assert caught.value.status == 413
    else:
        assert contract.read_limited(lambda _: next(chunks)) == b"x" * sum(sizes)


def test_read_limited_turns_reader_errors_into_400() -> None:
    def broken(_: int) -> bytes:
        raise OSError("invalid chunk size")

    with pytest.raises(contract.ContractError) as caught:
        contract.read_limited(broken)
    assert (caught.value.status, caught.value.body) == (400, {"detail": "malformed request body"})


@given(target=st.integers(0, 10_000),
       headers=st.lists(st.tuples(st.binary(min_size=1, max_size=20),
                                  st.binary(max_size=9000)), max_size=120))
def test_request_limits(target: int, headers: list[tuple[bytes, bytes]]) -> None:
    error = contract.request_limit_error(target, headers)
    too_long = target > contract.MAX_REQUEST_TARGET
    too_big = len(headers) > contract.MAX_HEADER_FIELDS or any(
        len(n) + len(v) + 2 > contract.MAX_HEADER_FIELD_BYTES for n, v in headers)
    expected = 414 if too_long else 431 if too_big else None
    assert (error.status if error else None) == expected
