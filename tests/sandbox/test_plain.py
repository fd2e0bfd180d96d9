"""The plain-data codec and comparisons (pure functions, no sandbox)."""

from __future__ import annotations

import collections
import json
import math

import pytest

from selfdebug.plain import NotPlain, TooLarge, close, decode, encode, equal

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
    from selfdebug.plain import MAX_DEPTH

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


def test_long_float_containers_travel_packed_and_come_back_bit_for_bit() -> None:
    """Long float lists go as packed doubles (a repr per float made HumanEval/130 slow): the value, its type
    and every bit (signed zero, nan, inf, subnormals) come back; short or mixed ones stay plain JSON."""
    import math

    from selfdebug.plain import PACKED_MIN

    floats = [0.1 * i for i in range(PACKED_MIN)] + [-0.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308]
    for value in (floats, tuple(floats), set(floats[:PACKED_MIN])):
        node = json.loads(json.dumps(encode(value)))
        assert node[0] == {list: "l", tuple: "t", set: "s"}[type(value)] + "d" and isinstance(node[1], str)
        back = decode(node)
        assert type(back) is type(value)
        if isinstance(value, set):
            assert back == value
        else:
            assert [math.copysign(1, v) for v in back] == [math.copysign(1, v) for v in value]
            assert repr(back) == repr(value)
    # ints among the floats (HumanEval/130's tri) come back as ints, exactly
    mixed = [1, 3, *floats[:PACKED_MIN], -(2**53) + 1, 2**53 - 1, 0]
    node = json.loads(json.dumps(encode(mixed)))
    assert node[0] == "ld" and node[2] == [0, 1, PACKED_MIN + 2, PACKED_MIN + 3, PACKED_MIN + 4]
    back = decode(node)
    assert repr(back) == repr(mixed) and [type(v) for v in back] == [type(v) for v in mixed]
    assert encode(floats[: PACKED_MIN - 1])[0] == "l"  # short: plain
    assert encode([*floats, 2**53])[0] == "l"  # an int a double cannot hold: plain
    assert encode([*floats, True])[0] == "l"  # a bool is not an int here
    assert encode(list(range(PACKED_MIN)) + [0.5])[0] == "l"  # mostly ints: plain
    budget = [16 * len(floats) - 1]
    with pytest.raises(TooLarge):
        encode(floats, budget=budget)
    for bad in (["ld", "AAAA", []], ["ld", "not base64!", []], ["td", 3, []], ["ld", "AAAAAAAA"],
                ["ld", "AAAAAAAA", [1]], ["ld", "mpmZmZmZuT8=", [0]]):  # 0.1 at an int position
        with pytest.raises(ValueError):
            decode(bad)


def test_relative_tolerance_is_evalplus_allclose_rule() -> None:
    """EvalPlus passes floats within ``atol + 1e-7 * |expected|`` (np.allclose): a model's ``pi * r * r * h``
    against the reference's ``pi * r**2 * h`` for a large cylinder (Mbpp/276) differs by more than 1e-6."""
    import math

    r, h = 4512.5, 98765.25
    ref = math.pi * r**2 * h
    ours = ref * (1 + 5e-8)  # a formula's rounding, relatively tiny, absolutely large
    assert abs(ours - ref) > 1e-6
    assert not equal(ours, ref, 1e-6)
    assert equal(ours, ref, 1e-6, 1e-7) and equal([1, (ours,)], [1, (ref,)], 1e-6, 1e-7)
    assert not equal(ref * (1 + 2e-7), ref, 1e-6, 1e-7)  # beyond the relative bound
    assert not equal(3, 4, 0.0, 0.5)  # ints stay exact
    from selfdebug.problems.evalplus import EVALPLUS_RTOL, mbpp_plus_case

    assert mbpp_plus_case(276, "volume_cylinder", [r, h], 0.0).rtol == EVALPLUS_RTOL == 1e-7
