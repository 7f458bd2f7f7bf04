"""The snapshot delta codec (games/engine/delta.py): apply(prev, diff(prev, cur)) == cur over any JSON-like values,
through both wire encodings, and bad patches are refused rather than misapplied."""

from __future__ import annotations

import msgpack
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games.engine import delta
from games.engine.delta import UNCHANGED, PatchError

# Every test of diff() runs on the Python diff and, when deploy/build_ext.py built it, the compiled one.
DIFFS = [pytest.param(delta.pure_diff, id="python")]
if delta.COMPILED:
    DIFFS.append(pytest.param(delta.diff, id="compiled"))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
keys = st.sampled_from(["a", "b", "x", "y", "tick", "players", "0", "1", ""])
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=30,
)


def through_wire(patch, encoding):
    if encoding == "json":
        return orjson.loads(orjson.dumps(patch))
    return msgpack.unpackb(msgpack.packb(patch, use_bin_type=True), raw=False)


def typed(value):
    """Equality that tells 1, 1.0 and True apart, as the wire does."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize("diff", DIFFS)
@settings(max_examples=400, deadline=None)
@given(prev=values, cur=values)
def test_apply_of_diff_gives_the_new_value(diff, prev, cur):
    patch = diff(prev, cur)
    if patch is UNCHANGED:
        assert typed(prev) == typed(cur)
        return
    for encoding in ("json", "msgpack"):
        assert typed(delta.apply(prev, through_wire(patch, encoding))) == typed(cur)


@pytest.mark.parametrize("diff", DIFFS)
@settings(max_examples=200, deadline=None)
@given(prev=values, cur=values)
def test_apply_leaves_the_base_untouched(diff, prev, cur):
    before = orjson.dumps(prev)
    patch = diff(prev, cur)
    if patch is not UNCHANGED:
        delta.apply(prev, patch)
    assert orjson.dumps(prev) == before


@pytest.mark.parametrize("diff", DIFFS)
@settings(max_examples=200, deadline=None)
@given(start=values, steps=st.lists(values, min_size=1, max_size=5))
def test_a_chain_of_deltas_rebuilds_every_step(diff, start, steps):
    held = start
    prev = start
    for cur in steps:
        patch = diff(prev, cur)
        if patch is not UNCHANGED:
            held = delta.apply(held, through_wire(patch, "json"))
        assert typed(held) == typed(cur)
        prev = cur


def arena_snapshot(tick, xs):
    return {
        "full": True, "tick": tick, "phase": "running", "acks": [tick, tick, tick, tick],
        "connected": [True] * 4, "removed": [False] * 4,
        "state": {"tick": tick, "time_left": 120.0 - tick / 20, "bullets": [],
                  "players": [{"seat": s, "x": x, "y": 50.0, "aim": 0.5, "score": 0, "alive": True} for s, x in enumerate(xs)]},
    }


@pytest.mark.parametrize("diff", DIFFS)
def test_a_moving_player_costs_only_its_coordinates(diff):
    prev = arena_snapshot(10, [1.0, 2.0, 3.0, 4.0])
    cur = arena_snapshot(11, [1.0, 2.5, 3.0, 4.0])
    patch = diff(prev, cur)
    assert patch["state"]["players"] == [delta.LIST, 4, 1, {"x": 2.5}]
    assert "connected" not in patch and "removed" not in patch and "phase" not in patch
    assert len(orjson.dumps(patch)) < len(orjson.dumps(cur)) / 3


@pytest.mark.parametrize("diff", DIFFS)
def test_removed_keys_and_shorter_lists(diff):
    patch = diff({"a": 1, "b": [1, 2, 3, 4, 5]}, {"b": [1, 2, 3]})
    assert patch == {"a": [delta.DELETE], "b": [delta.LIST, 3]}
    assert delta.apply({"a": 1, "b": [1, 2, 3, 4, 5]}, patch) == {"b": [1, 2, 3]}


@pytest.mark.parametrize("diff", DIFFS)
def test_an_int_becoming_an_equal_float_is_a_change(diff):
    assert diff({"v": 1}, {"v": 1.0}) == {"v": 1.0}
    assert diff([True], [1]) == [delta.REPLACE, [1]]


@pytest.mark.parametrize(
    ("base", "patch"),
    [
        (5, {"a": 1}),  # an object patch on a scalar
        ({"a": 1}, {"b": {"c": 1}}),  # a new key given as a patch, not a whole value
        ([1, 2], [delta.LIST, 2, 5, 1]),  # index past the length
        ([1, 2], [delta.LIST, -1]),  # negative length
        ([1, 2], [delta.LIST, 3, 2, [delta.LIST, 0]]),  # a new item given as a list patch
        ({"a": 1}, [7, 1]),  # unknown tag
        ({"a": 1}, []),
        ("text", [delta.LIST, 1]),  # a list patch on a string
    ],
)
def test_a_patch_that_does_not_fit_its_base_is_refused(base, patch):
    with pytest.raises(PatchError):
        delta.apply(base, patch)


@pytest.mark.parametrize("diff", DIFFS)
@settings(max_examples=300, deadline=None)
@given(prev=values, cur=values)
def test_key_numbers_round_trip_through_msgpack(diff, prev, cur):
    """msgpack deltas name keys by their number in the stream's table (the first snapshot's keys); keys the table
    lacks stay text."""
    table = delta.key_table(prev)
    patch = diff(prev, cur, {key: number for number, key in enumerate(table)})
    if patch is UNCHANGED:
        assert typed(prev) == typed(cur)
        return
    wire = msgpack.unpackb(msgpack.packb(patch, use_bin_type=True), raw=False, strict_map_key=False)
    assert typed(delta.apply(prev, wire, table)) == typed(cur)


@pytest.mark.parametrize("diff", DIFFS)
def test_a_key_table_lists_every_key_once_and_numbered_keys_need_it(diff):
    assert sorted(delta.key_table({"a": [{"x": 1, "y": {"a": 2}}], "b": []})) == ["a", "b", "x", "y"]
    numbers = {"players": 0, "x": 1}
    patch = diff({"players": [{"x": 1, "y": 2}]}, {"players": [{"x": 5, "y": 2}]}, numbers)
    assert patch == {0: [delta.EACH, {1: 5}]}
    assert delta.apply({"players": [{"x": 1, "y": 2}]}, patch, ["players", "x"]) == {"players": [{"x": 5, "y": 2}]}
    with pytest.raises(PatchError):
        delta.apply({"players": []}, patch)  # no table
    with pytest.raises(PatchError):
        delta.apply({"players": []}, {7: 1}, ["players"])  # a number past the table


@pytest.mark.parametrize("diff", DIFFS)
def test_when_every_item_changes_in_part_the_patch_has_no_indices(diff):
    prev = [{"x": 1, "y": 2}, {"x": 3, "y": 4}]
    cur = [{"x": 1.5, "y": 2}, {"x": 3, "y": 4.5}]
    assert diff(prev, cur) == [delta.EACH, {"x": 1.5}, {"y": 4.5}]
    assert delta.apply(prev, [delta.EACH, {"x": 1.5}, {"y": 4.5}]) == cur
    # One item unchanged, or a length change: indices again.
    assert diff(prev, [cur[0], prev[1]]) == [delta.LIST, 2, 0, {"x": 1.5}]
    assert diff(prev, [*cur, {"x": 0}])[0] == delta.LIST
    with pytest.raises(PatchError):
        delta.apply(prev[:1], [delta.EACH, {"x": 1.5}, {"y": 4.5}])


def test_the_compiled_diff_is_used_only_when_built_from_this_very_source(tmp_path):
    from deploy import build_ext

    if not delta.COMPILED:
        pytest.skip("no compiled diff here (deploy/build_ext.py needs Cython and a C compiler)")
    assert delta.load_compiled() is not None
    edited = tmp_path / "delta.py"
    edited.write_text(build_ext.SOURCE.read_text() + "\n# an edit after the build\n")
    assert delta.load_compiled(edited) is None  # the Python diff is used, with a warning
    # What is compiled is delta.py's own code above the marker, stamped with the whole file's digest.
    source = build_ext.compiled_source(build_ext.SOURCE.read_text())
    assert "def diff(" in source and "load_compiled" not in source and "SOURCE_DIGEST" in source


def test_ci_runs_the_compiled_diff():
    """scripts/test builds it; CI has Cython and gcc, so a silent fallback to the Python diff would go unnoticed."""
    import os

    if os.environ.get("CI") != "true":
        pytest.skip("outside CI the build is optional")
    assert delta.COMPILED


# The compiled diff against the Python one: the same patch, exactly (types, key order, the same REPLACE / LIST / EACH
# choices), for any pair of values. Both come from delta.py's source, but the compiled one is C code that Cython
# typed (`dict`, `list`, C integers and doubles), which a wrong hint can make differ.

def exactly(patch):
    """A patch as a comparable tree that keeps what == forgets: each value's type (1, 1.0 and True; list and tuple),
    dict key order, -0.0 and nan (by repr), and UNCHANGED."""
    if patch is UNCHANGED:
        return "UNCHANGED"
    kind = type(patch)
    if kind is dict:
        return ("dict", [(exactly(key), exactly(value)) for key, value in patch.items()])
    if kind is list or kind is tuple:
        return (kind.__name__, [exactly(item) for item in patch])
    return (kind.__name__, repr(patch))


# Few distinct scalars, so that equal values of different types (0, 0.0, False; 1, 1.0, True) and equal values in
# different objects (a float, big ints) meet often.
SCALARS = [None, True, False, 0, 1, -7, 2**40, 0.0, -0.0, 1.0, 2.5, float("inf"), float("nan"), "", "a", "players"]
NAMES = ["a", "b", "x", "y", "aim", "players", "", "0"]


def random_value(rng, depth=3):
    if depth <= 0 or rng.random() < 0.4:
        scalar = rng.choice(SCALARS)
        return float(scalar) if type(scalar) is float and rng.random() < 0.5 else scalar  # a new float object
    kind = rng.choice((dict, dict, list, list, tuple))
    if kind is dict:
        return {rng.choice(NAMES): random_value(rng, depth - 1) for _ in range(rng.randrange(7))}
    return kind(random_value(rng, depth - 1) for _ in range(rng.randrange(7)))


def mutated(rng, value, depth=3):
    """A value like `value`, as the next snapshot is like the last: most parts the same objects or equal copies, some
    changed, keys added and removed, lists grown and cut, now and then a different type."""
    roll = rng.random()
    if roll < 0.25:
        return value
    if roll < 0.3 or depth <= 0:
        return random_value(rng, depth)
    kind = type(value)
    if kind is dict:
        out = {key: mutated(rng, item, depth - 1) for key, item in value.items() if rng.random() > 0.1}
        for _ in range(rng.choice((0, 0, 0, 1, 2))):
            out[rng.choice(NAMES)] = random_value(rng, depth - 1)
        if rng.random() < 0.1:  # the same keys in another order
            out = dict(reversed(out.items()))
        return out
    if kind is list or kind is tuple:
        items = [mutated(rng, item, depth - 1) for item in value]
        if rng.random() < 0.2:
            del items[rng.randrange(len(items) + 1):]
        if rng.random() < 0.2:
            items.extend(random_value(rng, depth - 1) for _ in range(rng.randrange(1, 4)))
        if rng.random() < 0.1:
            kind = tuple if kind is list else list
        return kind(items)
    if type(value) is float and rng.random() < 0.5:
        return value + rng.choice((0.0, 0.5))  # an equal or a changed float, in a new object
    return rng.choice(SCALARS)


def key_numbers(value, rng):
    """Key numbers as a stream has them: the table of `value`, or part of it (later keys stay text)."""
    table = delta.key_table(value)
    return {key: number for number, key in enumerate(table) if rng.random() < 0.8}


def arena_bodies(ticks):
    """The snapshot bodies (what deltas patch) of a real arena match in play: bench/engine_tick.py's match."""
    from bench.engine_tick import inputs, running_match
    from games.engine.snapshots import snapshot_body

    runner = running_match()
    bodies = []
    for tick, row in enumerate(inputs(ticks)):
        for seat, raw in enumerate(row):
            runner.queue_input(seat, tick + 1, runner.game.parse_input(raw), raw)
        frame = runner.run_one_step(0.0)
        bodies.append(snapshot_body(frame.message))
    return bodies


needs_compiled = pytest.mark.skipif(not delta.COMPILED, reason="no compiled diff here (deploy/build_ext.py)")


@needs_compiled
def test_the_compiled_diff_gives_the_python_diffs_patch_for_random_values():
    import random

    rng = random.Random(20240611)
    for _ in range(4000):
        prev = random_value(rng)
        cur = mutated(rng, prev)
        for keys in (delta.NO_KEYS, key_numbers(prev, rng)):
            assert exactly(delta.diff(prev, cur, keys)) == exactly(delta.pure_diff(prev, cur, keys)), (prev, cur, keys)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(prev=values, cur=values)
def test_the_compiled_diff_gives_the_python_diffs_patch_for_any_values(prev, cur):
    assert exactly(delta.diff(prev, cur)) == exactly(delta.pure_diff(prev, cur))


@needs_compiled
def test_the_compiled_diff_gives_the_python_diffs_patch_for_arena_snapshots():
    import random

    bodies = arena_bodies(600)
    numbers = {key: number for number, key in enumerate(delta.key_table(bodies[0]))}
    rng = random.Random(7)
    pairs = [(bodies[i - 1], bodies[i]) for i in range(1, len(bodies))]  # tick to tick, as the stream diffs
    pairs += [(rng.choice(bodies), rng.choice(bodies)) for _ in range(300)]  # far apart: bullets come and go
    for prev, cur in pairs:
        for keys in (delta.NO_KEYS, numbers):
            assert exactly(delta.diff(prev, cur, keys)) == exactly(delta.pure_diff(prev, cur, keys))


# The Shadow (what a stream keeps between ticks: delta.py, "Shadow"): diffing against it gives diff()'s patch against
# the value it keeps, exactly, tick after tick. Compiled it is a copy in flat arrays, which is code of its own.

SHADOWS = [pytest.param((delta.PureShadow, delta.pure_keep, delta.pure_shadow_diff), id="python")]
if delta.COMPILED:
    SHADOWS.append(pytest.param((delta.Shadow, delta.keep, delta.shadow_diff), id="compiled"))


@pytest.mark.parametrize("shadow_api", SHADOWS)
def test_a_shadow_gives_the_diff_against_the_value_it_keeps_for_random_chains(shadow_api):
    import random

    make, keep, shadow_diff = shadow_api
    rng = random.Random(20261130)
    for _ in range(3000):
        prev = random_value(rng)
        keys = key_numbers(prev, rng) if rng.random() < 0.5 else delta.NO_KEYS
        shadow = make()
        keep(shadow, prev)
        for _ in range(3):  # each diff leaves the shadow keeping the new value
            cur = mutated(rng, prev)
            assert exactly(shadow_diff(shadow, cur, keys)) == exactly(delta.pure_diff(prev, cur, keys)), (prev, cur)
            prev = cur


@pytest.mark.parametrize("shadow_api", SHADOWS)
def test_a_shadow_handles_big_ints_nan_other_types_and_dicts_of_many_keys(shadow_api):
    import collections
    import enum
    import random

    class Level(enum.IntEnum):
        LOW = 1
        HIGH = 2

    make, keep, shadow_diff = shadow_api
    rng = random.Random(3)
    odd = [2**70, -(2**63), 2**63 - 1, 2**63, Level.LOW, Level.HIGH, 1, True, float("nan"), 0.0, -0.0, "x", b"raw",
           collections.OrderedDict(a=1), (1, 2)]

    def value(depth=2):
        roll = rng.random()
        if depth == 0 or roll < 0.3:
            return rng.choice(odd)
        if roll < 0.6:  # up to 90 keys: past the 64 the compiled shadow matches keys by
            return {f"k{rng.randrange(80)}": value(depth - 1) for _ in range(rng.randrange(90))}
        return [value(depth - 1) for _ in range(rng.randrange(5))]

    for _ in range(1500):
        prev = value()
        shadow = make()
        keep(shadow, prev)
        for _ in range(2):
            if isinstance(prev, dict) and rng.random() < 0.5:  # the same keys but one, in another order
                cur = dict([*list(reversed(prev.items()))[1:], ("new", value(1))])
            else:
                cur = value()
            assert exactly(shadow_diff(shadow, cur)) == exactly(delta.pure_diff(prev, cur)), (prev, cur)
            prev = cur


@pytest.mark.parametrize("shadow_api", SHADOWS)
def test_a_shadow_follows_an_arena_match_tick_after_tick(shadow_api):
    make, keep, shadow_diff = shadow_api
    bodies = arena_bodies(400)
    numbers = {key: number for number, key in enumerate(delta.key_table(bodies[0]))}
    for keys in (delta.NO_KEYS, numbers):
        shadow = make()
        keep(shadow, bodies[0])
        for prev, cur in zip(bodies, bodies[1:], strict=False):
            assert exactly(shadow_diff(shadow, cur, keys)) == exactly(delta.pure_diff(prev, cur, keys))


@needs_compiled
def test_the_compiled_shadow_keeps_a_copy_not_the_value():
    """What it keeps is what the value was when kept: a list changed in place afterwards is a change (diff() of the
    same object sees none), and the value itself is not referenced (strings and keys are, by reference)."""
    import sys

    inner = [1.5, 2.5]
    value = {"state": {"xs": inner}}
    shadow = delta.Shadow()
    before = sys.getrefcount(inner)
    delta.keep(shadow, value)
    after = sys.getrefcount(inner)
    assert after == before
    inner[0] = 9.5
    assert delta.shadow_diff(shadow, value) == {"state": {"xs": [1, 2, 0, 9.5]}}


# --- pack(): the compiled MessagePack writer. Its bytes must be msgpack's own, or it must decline (NotPacked). ----

MSGPACK = {
    True: msgpack.Packer(use_bin_type=True, use_single_float=True).pack,
    False: msgpack.Packer(use_bin_type=True).pack,
}


def packed_or_refused(pack, value, single_floats):
    """pack's bytes, or what went wrong, comparable between pack() and msgpack's packer."""
    try:
        return pack(value, single_floats)
    except delta.NotPacked:
        return "declined"
    except (OverflowError, ValueError, TypeError, UnicodeEncodeError) as exc:
        return f"raised {type(exc).__name__}"


def msgpacks(value, single_floats):
    return packed_or_refused(lambda v, s: MSGPACK[s](v), value, single_floats)


def assert_packs_as_msgpack(value, single_floats):
    """pack() writes msgpack's bytes; it declines only what msgpack refuses too (then msgpack raises its own error)."""
    ours = packed_or_refused(delta.pack, value, single_floats)
    if ours == "declined":
        assert msgpacks(value, single_floats).startswith("raised"), repr(value)[:80]
    else:
        assert ours == msgpacks(value, single_floats), repr(value)[:80]


# Each boundary where msgpack changes form: fixint / 8 / 16 / 32 / 64 bits, signed and unsigned; fixstr / str8 / 16 /
# 32; fixarray and fixmap / 16 / 32; float32's range.
BOUNDARY_INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, -1, -32, -33, -128, -129,
                 -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]
BOUNDARY_VALUES = [
    *BOUNDARY_INTS, 0.0, -0.0, 0.1, 123.4, 1e-45, 3.4028234e38, 1e300, float("inf"), float("-inf"), float("nan"),
    "", "é", "日本語", *("x" * n for n in (31, 32, 255, 256, 65535, 65536)),
    None, True, False, [], (), {}, list(range(15)), list(range(16)), list(range(65536)),
    {n: n for n in range(15)}, {n: n for n in range(16)}, {str(n): None for n in range(65536)},
    [(1, 2.5), {"a": [None, True]}, {7: "seven"}],
]


@needs_compiled
@pytest.mark.parametrize("single_floats", [True, False], ids=["float32", "float64"])
def test_pack_writes_msgpacks_bytes_at_every_boundary(single_floats):
    for value in BOUNDARY_VALUES:
        assert_packs_as_msgpack(value, single_floats)
    assert packed_or_refused(delta.pack, 1e300, True) == "declined"  # past float32: msgpack raises OverflowError


@needs_compiled
@pytest.mark.parametrize("single_floats", [True, False], ids=["float32", "float64"])
def test_pack_writes_msgpacks_bytes_for_random_values(single_floats):
    import random

    rng = random.Random(11)
    for _ in range(3000):
        assert_packs_as_msgpack(random_value(rng, depth=4), single_floats)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(value=values)
def test_pack_writes_msgpacks_bytes_for_any_values(value):
    for single_floats in (True, False):
        assert_packs_as_msgpack(value, single_floats)


@needs_compiled
def test_pack_writes_msgpacks_bytes_for_arena_deltas_and_keyframes():
    from games.engine.snapshots import delta_message

    bodies = arena_bodies(200)
    numbers = {key: number for number, key in enumerate(delta.key_table(bodies[0]))}
    for n in range(1, len(bodies)):
        patch = delta.diff(bodies[n - 1], bodies[n], numbers)
        for message in (delta_message(n, {} if patch is UNCHANGED else patch, None), bodies[n]):
            assert delta.pack(message, True) == MSGPACK[True](message)
            assert delta.pack(message, False) == MSGPACK[False](message)


def test_values_pack_declines_go_out_as_msgpack_writes_them():
    """What pack() leaves to msgpack (types it does not write exactly, ints past 64 bits, invalid text, float32
    overflow, nesting past msgpack's limit): the protocol's encoders still give msgpack's bytes, or its error."""
    import collections
    import enum

    from games.engine import protocol

    class Level(enum.IntEnum):
        HIGH = 3

    deep: list = []
    tip = deep
    for _ in range(600):
        tip.append([])
        tip = tip[0]
    odd = [Level.HIGH, collections.OrderedDict(b=1, a=2), b"\x00bytes", bytearray(b"x"), 2**64 - 1, 2**64, -(2**63) - 1,
           "\ud800", 3.5e38, -1e300, {"k": [1, Level.HIGH]}, deep, True, 1]
    for value in odd:
        if delta.COMPILED and type(value) not in (bool, int):
            assert packed_or_refused(delta.pack, value, True) == "declined", repr(value)[:60]
        for single_floats, encode in ((True, protocol.encode_msgpack_single_floats), (False, protocol.encode_msgpack)):
            assert packed_or_refused(lambda v, s, encode=encode: encode(v), value, single_floats) == msgpacks(
                value, single_floats
            ), repr(value)[:60]


def test_the_protocol_encodes_with_pack_when_compiled():
    from games.engine import protocol

    assert (protocol._fast_pack is delta.pack) == delta.COMPILED


# --- [4, step, ...]: a list of integers that moved, each by a small step -----------------------------------------


@pytest.mark.parametrize("diff", DIFFS)
def test_acks_that_moved_travel_as_their_steps(diff):
    prev = {"acks": [300, 301, 65_000, 7], "waiting": [1, 2, 1, 1]}
    cur = {"acks": [301, 302, 65_002, 7], "waiting": [2, 1, 2, 2]}
    patch = diff(prev, cur)
    assert patch == {"acks": [delta.ADD, 1, 1, 2, 0], "waiting": [delta.ADD, 1, -1, 1, 1]}
    assert delta.apply(prev, patch) == cur
    assert len(msgpack.packb(patch["acks"])) == 6  # 15 as the whole list (three bytes an ack past 255)


@pytest.mark.parametrize("diff", DIFFS)
@pytest.mark.parametrize(
    ("prev", "cur", "steps"),
    [
        ([0, 0], [127, -32], True),  # the step range's ends
        ([0, 0], [128, 1], False),
        ([0, 0], [1, -33], False),
        ([2**63 - 128, 5], [2**63 - 1, 6], True),  # 64-bit integers
        ([2**63 - 1, 5], [2**63, 6], False),  # past 64 bits: whole
        ([-(2**63), 5], [-(2**63) + 127, 6], True),
        ([-(2**63) + 32, 5], [-(2**63), 6], True),
        ([True, 1], [False, 2], False),  # booleans and floats are not steps
        ([1.0, 2.0], [2.0, 3.0], False),
        ([1, 2, 3], [2, 3], False),  # a different length
        ([1, 2, 3, 4], [2, 2, 3, 4], False),  # half or fewer changed: index patches, as before
    ],
)
def test_steps_only_for_64_bit_integers_within_the_range(diff, prev, cur, steps):
    patch = diff(prev, cur)
    assert (patch[0] == delta.ADD) == steps, patch
    assert delta.apply(prev, patch) == cur and [type(v) for v in delta.apply(prev, patch)] == [type(v) for v in cur]


@pytest.mark.parametrize("diff", DIFFS)
def test_counters_moving_in_steps_rebuild_every_tick(diff):
    import random

    rng = random.Random(5)
    acks = [rng.randrange(-(2**40), 2**40) for _ in range(6)]
    state = {"acks": acks, "tick": 0}
    shadow = delta.Shadow()
    delta.keep(shadow, state)
    for tick in range(1, 400):
        nxt = {"acks": [a + rng.choice((0, 1, 1, 1, 2, -1, 100, -40)) for a in state["acks"]], "tick": tick}
        patch = diff(state, nxt)
        assert exactly(delta.shadow_diff(shadow, nxt)) == exactly(patch) == exactly(delta.pure_diff(state, nxt))
        assert delta.apply(state, patch) == nxt
        state = nxt


@pytest.mark.parametrize(
    "patch",
    [[delta.ADD, 1], [delta.ADD, 1, 2, 3], [delta.ADD, 1.5, 1], [delta.ADD, True, 1]],
)
def test_steps_that_do_not_fit_are_refused(patch):
    with pytest.raises(PatchError):
        delta.apply([1, 2], patch)
    with pytest.raises(PatchError):
        delta.apply([1.0, 2], [delta.ADD, 1, 1])


# shadow_delta: the delta written by the diff itself (delta.py, "A delta written as MessagePack by the diff itself"):
# the bytes of the object path, pack(delta_message(n, shadow_diff(...), events)), exactly, tick after tick; and where
# it leaves a value to the object path (NotPacked), the shadow as it was.

compiled_only = pytest.mark.skipif(not delta.COMPILED, reason="shadow_delta is compiled code")


def delta_through_objects(shadow, cur, keys, n, events):
    from games.engine import protocol
    from games.engine.snapshots import delta_message

    patch = delta.shadow_diff(shadow, cur, keys)
    return protocol.encode_msgpack_single_floats(delta_message(n, {} if patch is UNCHANGED else patch, events))


def delta_written(shadow, cur, keys, n, events):
    """What the stream does: the written delta, or on NotPacked the object path."""
    try:
        return delta.shadow_delta(shadow, cur, keys, n, events), True
    except delta.NotPacked:
        return delta_through_objects(shadow, cur, keys, n, events), False


def follow_chain(values, keys, rng=None):
    """Both paths along `values`, each with its own shadow; how many deltas were written (not left to objects)."""
    written_shadow, object_shadow = delta.Shadow(), delta.Shadow()
    delta.keep(written_shadow, values[0])
    delta.keep(object_shadow, values[0])
    written = 0
    for n, cur in enumerate(values[1:], start=2):
        events = [{"type": "hit", "seat": n % 4}] if rng is not None and rng.random() < 0.2 else None
        try:
            got, was_written = delta_written(written_shadow, cur, keys, n, events)
        except OverflowError as exc:  # a float past float32's range: msgpack's own error, on both paths
            got, was_written = repr(exc), False
        try:
            expected = delta_through_objects(object_shadow, cur, keys, n, events)
        except OverflowError as exc:
            expected = repr(exc)
        assert got == expected, (values[n - 2], cur)
        written += was_written
    return written


@compiled_only
def test_a_written_delta_is_the_object_paths_bytes_for_random_chains():
    import random

    rng = random.Random(20261201)
    written = total = 0
    for _ in range(3000):
        chain = [random_value(rng)]
        for _ in range(3):
            chain.append(mutated(rng, chain[-1]))
        keys = key_numbers(chain[0], rng) if rng.random() < 0.7 else delta.NO_KEYS
        written += follow_chain(chain, keys, rng)
        total += 3
    assert written > total * 0.9  # (nan and the like are the object path's; most deltas are written)


@compiled_only
def test_a_written_delta_is_the_object_paths_bytes_for_long_lists_many_keys_and_odd_values():
    import enum
    import random

    class Level(enum.IntEnum):
        LOW = 1

    rng = random.Random(7)
    odd = [2**70, 2**63 - 1, -(2**63), Level.LOW, b"raw", float("nan"), 1e40, "é", 0.5, 3, True, None]

    def value(depth=2):
        roll = rng.random()
        if depth == 0 or roll < 0.3:
            return rng.choice(odd) if rng.random() < 0.3 else rng.random()
        if roll < 0.5:  # past the 64 keys the shadow matches one by one, and with keys that are not strings
            return {(f"k{rng.randrange(80)}" if rng.random() < 0.95 else rng.randrange(5)): value(depth - 1)
                    for _ in range(rng.randrange(90))}
        return [value(depth - 1) for _ in range(rng.choice((3, 20, 64, 65, 70)))]  # past the 64 written ops

    for _ in range(300):
        chain = [value()]
        for _ in range(3):
            cur = chain[-1]
            if isinstance(cur, list) and rng.random() < 0.7:  # most items the same, a few changed: LIST and EACH forms
                cur = [item if rng.random() < 0.8 else value(1) for item in cur]
            else:
                cur = value()
            chain.append(cur)
        follow_chain(chain, delta.NO_KEYS)


@compiled_only
def test_a_written_delta_follows_an_arena_match_and_the_object_path_is_the_exception():
    bodies = arena_bodies(400)
    numbers = {key: number for number, key in enumerate(delta.key_table(bodies[0]))}
    assert follow_chain(bodies, numbers) == len(bodies) - 1  # every arena delta is written


@compiled_only
def test_a_written_delta_names_keys_by_number_past_one_byte_and_past_the_numbers_an_entry_keeps():
    """The writer keeps each key's number in its entry (delta.py, _KEY_NUMBERED): numbers of one byte, of two (128 on),
    and past what an entry keeps (200 on: looked up every time) all give the object path's bytes, tick after tick."""
    import random

    rng = random.Random(3)
    names = [f"key{i}" for i in range(260)]
    numbers = {name: number for number, name in enumerate(names)}
    chain = [{name: 0 for name in names}]
    for _ in range(12):  # a few values change each tick, some of them again and again
        cur = dict(chain[-1])
        for name in rng.sample(names, 20) + ["key5", "key150", "key230"]:
            cur[name] += 1
        chain.append(cur)
    assert follow_chain(chain, numbers) == len(chain) - 1


@compiled_only
def test_a_shadow_written_with_another_key_table_does_not_use_the_numbers_of_the_first():
    """A key's number is kept from one written delta to the next only while the table is the same object."""
    names = [f"k{i}" for i in range(20)]
    forward = {name: number for number, name in enumerate(names)}
    backward = {name: len(names) - 1 - number for number, name in enumerate(names)}
    written_shadow, object_shadow = delta.Shadow(), delta.Shadow()
    value = {name: 0 for name in names}
    delta.keep(written_shadow, value)
    delta.keep(object_shadow, value)
    for n, keys in enumerate([forward, forward, backward, backward, forward, delta.NO_KEYS, forward], start=2):
        value = {name: count + 1 for name, count in value.items()}  # every key's value changes: every key is written
        written = delta.shadow_delta(written_shadow, value, keys, n, None)
        assert written == delta_through_objects(object_shadow, value, keys, n, None), (n, keys is forward)


@compiled_only
def test_a_value_left_to_the_object_path_leaves_the_shadow_as_it_was():
    import enum

    class Level(enum.IntEnum):
        LOW = 1

    shadow = delta.Shadow()
    delta.keep(shadow, {"a": 1.0, "b": [1, 2]})
    with pytest.raises(delta.NotPacked):
        delta.shadow_delta(shadow, {"a": 2.0, "b": [1, Level.LOW]}, {}, 2, None)
    # The next diff is still against the kept value, not a half-recorded one.
    assert delta.shadow_diff(shadow, {"a": 2.0, "b": [1, 2]}, {}) == {"a": 2.0}


@compiled_only
@pytest.mark.parametrize("size", [1, 7, 14, 15, 16, 17, 40, 64])
def test_a_written_delta_has_the_shortest_headers_at_every_size(size):
    """Headers are written once a container's count is known: around 16 (msgpack's fixmap and fixarray end there)."""
    first = {
        "d": {f"k{i}": i for i in range(size)},  # every value changes: a map of `size` entries
        "each": [{"x": float(i)} for i in range(size)],  # every item patched in part: [EACH, ...] of size + 1
        "some": [{"x": float(i)} for i in range(2 * size)],  # half: [LIST, length, i, patch, ...] of 2 * size + 2
    }
    second = {
        "d": {f"k{i}": i + 1 for i in range(size)},
        "each": [{"x": i + 0.5} for i in range(size)],
        "some": [{"x": i + 0.5 if i % 2 else float(i)} for i in range(2 * size)],
    }
    third = {"d": {}, "each": first["each"][:1], "some": second["some"] + [{"x": 1.0}] * 16}  # cut, and 16 new items
    assert follow_chain([first, second, third, first], delta.NO_KEYS) == 3


def test_delta_py_runs_as_plain_python_without_cython(tmp_path):
    """Without Cython installed, delta.py's decorators and declarations stand in for nothing: the Python diff runs,
    and the compiled-only writers say so (NotPacked)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.modules['cython'] = None\n"
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('plain_delta', {str(Path(delta.__file__))!r})\n"
        "d = importlib.util.module_from_spec(spec); spec.loader.exec_module(d)\n"
        "assert not d.COMPILED  # (run away from the project: no games.engine._delta_c to import)\n"
        "assert d.diff({'a': 1}, {'a': 2}) == {'a': 2}\n"
        "s = d.Shadow(); d.keep(s, {'a': 1}); assert d.shadow_diff(s, {'a': 2}) == {'a': 2}\n"
        "for call in (lambda: d.pack([1]), lambda: d.shadow_delta(s, {'a': 3}, {}, 2, None)):\n"
        "    try:\n"
        "        call()\n"
        "    except d.NotPacked:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError('compiled only')\n"
        "print('plain')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "plain", done.stderr[-2000:]
