"""The plain-data codec and comparisons (pure functions, no sandbox)."""

from __future__ import annotations

import collections
import json
import math

import pytest

from selfdebug.sandbox.plain import NotPlain, TooLarge, close, decode, encode, equal

VALUES = [None, True, False, 0, -7, 2 ** 53, -(2 ** 80), 10 ** 5000, 1.5, -0.0, math.inf, 1 + 2j, "é\n",
          b"\x00\xff", [1, [2, (3,)]], (1, "a"), {1, 2}, frozenset({"x"}), {"a": [1.0], (1, 2): None}, []]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ + str(i) for i, v in enumerate(VALUES)])
def test_roundtrip_through_json_keeps_value_and_type(value: object) -> None:
    back = decode(json.loads(json.dumps(encode(value))))
    assert type(back) is type(value) and back == value


def test_nan_roundtrip() -> None:
    assert math.isnan(decode(json.loads(json.dumps(encode(math.nan)))))


def test_only_exact_builtins_leave() -> None:
    class Int(int):
        pass

    for bad in (Int(1), object(), [1, Int(2)], {"k": object()}, (x for x in [])):
        with pytest.raises(NotPlain, match="non-plain type"):
            encode(bad)
    assert decode(encode(collections.Counter(a=2))) == {"a": 2}
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(NotPlain):
        encode(cyclic)


def test_budget() -> None:
    with pytest.raises(TooLarge):
        encode(["x" * 1000] * 10, budget=[5000])
    encode(["x" * 1000] * 4, budget=[5000])


@pytest.mark.parametrize("node", [[], ["?"], ["l", 3], ["i", "zz"], ["d", [[1]]], {"a": 1}, ["F", 2]])
def test_decode_rejects_malformed(node: object) -> None:
    with pytest.raises(ValueError):
        decode(node)


def test_equal_with_tolerance() -> None:
    assert equal([0.1 + 0.2], [0.3], atol=1e-9) and not equal([0.1 + 0.2], [0.3])
    assert equal({"a": (1.0000001,)}, {"a": (1.0,)}, atol=1e-6)
    assert not equal([1.0], (1.0,), atol=1e-6)
    assert equal(10 ** 400, 10 ** 400, atol=1e-6) and not equal(10 ** 400, 1.0, atol=1e-6)
    assert equal(math.nan, math.nan, atol=1e-6) is True
    assert close(2, 2.0000001, 1e-6) and not close("2", 2, 1e-6) and not close(True, 1, 1e-6)


def test_flat_containers_encode_and_decode_as_item_by_item() -> None:
    """Containers of scalars take a fast path: it must give what encoding each item gives."""
    from selfdebug.sandbox.plain import MAX_DEPTH

    def slow(value: object) -> object:
        tag = {list: "l", tuple: "t", set: "s", frozenset: "f"}[type(value)]
        return [tag, [encode(v, 1) for v in value]]

    cases = [[1.5, 2, None, True, "x"], [2**53, 1], [-(2**53), 1.0], [2**53 - 1, float("nan"), float("inf")],
             (1, "ab", 3.0), {1, 2, 3}, frozenset({"a"}), [], [True, False], ["é" * 3, ""]]
    for value in cases:
        assert json.dumps(encode(value)) == json.dumps(slow(value)), value
        back = decode(json.loads(json.dumps(encode(value))))
        assert type(back) is type(value) and repr(back) == repr(value)
    budget = [16 * 3 + 5]  # the container, three items, five characters
    encode(["ab", "cde"], budget=budget)
    assert budget[0] == 0
    with pytest.raises(TooLarge):
        encode(["ab", "cdef"], budget=[16 * 3 + 5])
    nested: list = [1]
    for _ in range(MAX_DEPTH):
        nested = [nested]
    with pytest.raises(NotPlain):
        encode(nested)
