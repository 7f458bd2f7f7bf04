"""Delta codec for snapshots: diff(prev, cur) -> patch and apply(prev, patch) -> cur over JSON-like values.

Pure and transport-free. The patch format is on the wire (docs/protocol.md, "Version 2: deltas"), so static/js/gsclient.js
implements apply() too; keep the two in step. A patch is one of:

- a scalar (number, string, bool, null): the new value;
- an object: changes to a dict, by key; each value is itself a patch, or DELETE_MARK ([2]) for a removed key;
- an array, tagged by its first element:
  [0, value]                        the new value as is (a dict or a list, or anything replacing another type),
  [1, length, i, patch, i, patch, ...]  changes to a list: cut or padded to `length`, then each listed index patched
                                    (indices at or past the old length get a whole value: a scalar or [0, value]),
  [2]                               (only inside an object) the key is gone,
  [3, patch, patch, ...]            changes to every item of a list of the same length, in order (every player moved:
                                    no length and no indices),
  [4, step, step, ...]              a list of the same length of integers, each the old one plus its step (every
                                    seat's ack moved: a byte each instead of the whole list).

Objects are always patches and arrays always tagged, so a new dict or list travels as [0, value]: rare (a joining
player), while the common case, a few numbers changing deep inside, stays small.

Key numbers (msgpack only): with `keys`, a {name: number} table, an object patch names a key in the table by its number
instead of its text, as Colyseus' schema names a field by its index: "players" costs 1 byte instead of 8, and a moving
player's x, y and aim 3 instead of 8. apply() gets the same table as a list. Keys not in the table stay text.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

try:
    import cython  # Cython's pure-Python mode: what compiles the hints and decorators below (Cython 3.x)
except ImportError:  # no Cython at run time: the same code runs as plain Python, the decorators doing nothing

    class cython:  # type: ignore[no-redef]  # noqa: N801 (stands in for the module)
        compiled = False

        @staticmethod
        def cfunc(func: Any) -> Any:
            return func

        inline = cclass = cfunc
        int = uchar = longlong = ulonglong = double = Py_ssize_t = bint = None  # C types: only hints, or declare()'s first argument

        @staticmethod
        def declare(kind: Any, value: Any = None) -> Any:
            return value

        @staticmethod
        def exceptval(*args: Any, **kwargs: Any) -> Any:
            return lambda func: func


if cython.compiled:  # for _diff_same_keys, the Shadow and pack(), which only the compiled module uses
    from cython.cimports.cpython.bytearray import PyByteArray_AS_STRING
    from cython.cimports.cpython.bytes import PyBytes_FromStringAndSize
    from cython.cimports.cpython.dict import PyDict_Next
    from cython.cimports.cpython.list import PyList_GET_ITEM
    from cython.cimports.cpython.long import PyLong_AsLongLongAndOverflow
    from cython.cimports.cpython.object import Py_EQ, PyObject, PyObject_RichCompareBool
    from cython.cimports.cpython.unicode import PyUnicode_AsUTF8AndSize
    from cython.cimports.libc.math import isinf
    from cython.cimports.libc.string import memcpy, memmove

REPLACE, LIST, DELETE, EACH, ADD = 0, 1, 2, 3, 4
DELETE_MARK = [DELETE]
# An ADD patch's steps are msgpack fixints (one byte each): a list of integers in which more than half changed, each
# by a step in this range, travels as its steps, else whole. The integers are those of 64 bits (what the compiled
# shadow keeps as numbers).
ADD_STEP_MIN, ADD_STEP_MAX = -32, 127
# The same bounds as C constants, for the compiled _step_between: compared with the module's Python ints, each step
# was made an int object and compared in Python (a twentieth of a delta's cost).
_STEP_UP_MAX = cython.declare(cython.ulonglong, 127)
_STEP_DOWN_MAX = cython.declare(cython.ulonglong, 32)
assert _STEP_UP_MAX == ADD_STEP_MAX and _STEP_DOWN_MAX == -ADD_STEP_MIN
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# A list patch that gives more than this share of the items whole (numbers, say, or [0, value]) is sent as the new
# list instead: shorter, and as cheap to apply. Items patched in part (a moving player's x and y) always stay patches.
LIST_REWRITE_SHARE = 0.5


class PatchError(ValueError):
    """A patch that does not fit the value it is applied to (a wrong base: the caller needs a keyframe)."""


class _Unchanged:
    __slots__ = ()


UNCHANGED = _Unchanged()
_MISSING = _Unchanged()


_CONTAINERS = frozenset({dict, list, tuple})


NO_KEYS: dict[str, int] = {}


def key_table(value: Any) -> list[str]:
    """Every object key in `value`, once each, in the order they are first met: the table of key numbers for a
    stream that starts with `value` (keys that appear later stay text)."""
    seen: dict[str, None] = {}
    todo = [value]
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind is dict:
            for key, child in item.items():
                if type(key) is str:
                    seen[key] = None
                if type(child) in _CONTAINERS:
                    todo.append(child)
        elif kind is list or kind is tuple:
            todo.extend(child for child in item if type(child) in _CONTAINERS)
    return list(seen)


def diff(prev: Any, cur: Any, keys: dict[str, int] = NO_KEYS) -> Any:
    """The patch turning `prev` into `cur`, or UNCHANGED when they are equal. `keys`: object keys to send as numbers."""
    return _diff(prev, cur, keys)


# Compiled, the functions below are C functions (@cython.cfunc: the recursion is a C call, not Python's call
# protocol), and their type hints make C types of the locals: a `dict` or `list` is read with the C API, a Py_ssize_t
# or a double is a C number (LIST_REWRITE_SHARE * length was Python float arithmetic per list). In plain Python they
# are ordinary functions and the hints are ignored. Together these halved the compiled diff's time.


@cython.cfunc
@cython.inline
def _is_scalar(kind: type) -> cython.bint:
    # Exact types, not isinstance: True == 1 == 1.0 in Python, but they are different on the wire. Compiled, this is
    # inlined as pointer comparisons (a frozenset of the types hashed each time); in plain Python it is a call, which
    # the loops below make only for values that are not the same object as before.
    return kind is float or kind is int or kind is bool or kind is str or kind is type(None)


@cython.cfunc
@cython.inline
def _whole(value: Any) -> Any:
    """A value as a patch that needs no base."""
    kind = type(value)
    return [REPLACE, value] if kind is dict or kind is list or kind is tuple else value


@cython.cfunc
def _diff(prev: Any, cur: Any, keys: dict) -> Any:
    if prev is cur:
        return UNCHANGED
    kind = type(cur)
    prev_kind = type(prev)
    if kind is dict:
        return _diff_dict(prev, cur, keys) if prev_kind is dict else [REPLACE, cur]
    if kind is list or kind is tuple:  # tuples travel as arrays too
        return _diff_list(prev, cur, keys) if prev_kind is list or prev_kind is tuple else [REPLACE, cur]
    if kind is prev_kind and prev == cur:
        return UNCHANGED
    return cur if _is_scalar(kind) else [REPLACE, cur]


@cython.cfunc
def _diff_dict(prev: dict, cur: dict, keys: dict) -> Any:
    if cython.compiled and len(prev) == len(cur):  # most often the same keys: see _diff_same_keys
        same = _diff_same_keys(prev, cur, keys)
        if same is not _MISSING:
            return same
    changes: dict = {}
    found: cython.Py_ssize_t = 0
    for key, value in cur.items():
        old = prev.get(key, _MISSING)
        if old is _MISSING:
            changes[keys.get(key, key)] = _whole(value)
            continue
        found += 1
        if value is old:  # True, None, small ints, the same string: most unchanged fields
            continue
        patch = _field_patch(old, value, keys)
        if patch is not UNCHANGED:
            changes[keys.get(key, key)] = patch
    if found < len(prev):
        for key in prev:
            if key not in cur:
                changes[keys.get(key, key)] = DELETE_MARK
    return changes if changes else UNCHANGED


@cython.cfunc
@cython.inline
def _field_patch(old: Any, value: Any, keys: dict) -> Any:
    """The patch of a dict field or list item that holds another object than before: a scalar of the same type as is
    (or UNCHANGED when equal), anything else diffed."""
    kind = type(value)
    if kind is type(old) and _is_scalar(kind):
        return value if value != old else UNCHANGED
    return _diff(old, value, keys)


@cython.cfunc
def _diff_same_keys(prev: dict, cur: dict, keys: dict) -> Any:
    """Compiled only: _diff_dict when both dicts have the same keys in the same order, as a snapshot's dicts mostly do
    from one tick to the next (a player's seat, x, y, ...): both are walked side by side with the C API's PyDict_Next
    (borrowed pointers), with no lookup of each key in `prev`. _MISSING when the keys differ."""
    changes: dict = {}
    at: cython.Py_ssize_t = 0
    at_old: cython.Py_ssize_t = 0
    key: cython.pointer(PyObject) = cython.NULL
    item: cython.pointer(PyObject) = cython.NULL
    old_key: cython.pointer(PyObject) = cython.NULL
    old_item: cython.pointer(PyObject) = cython.NULL
    while PyDict_Next(cur, cython.address(at), cython.address(key), cython.address(item)):
        PyDict_Next(prev, cython.address(at_old), cython.address(old_key), cython.address(old_item))
        if key != old_key:  # not the same key object (names are interned, so the same name mostly is)
            return _MISSING
        if item == old_item:  # the same object: True, None, small ints, the same string
            continue
        patch = _field_patch(cython.cast(object, old_item), cython.cast(object, item), keys)
        if patch is not UNCHANGED:
            name = cython.cast(object, key)
            changes[keys.get(name, name)] = patch
    return changes if changes else UNCHANGED


@cython.cfunc
def _diff_list(prev_items: Any, cur_items: Any, keys: dict) -> Any:
    # Read as lists (tuples, rare, are copied) so that compiled, cur[i] is a C array read. A whole new value is still
    # the one given: [REPLACE, cur_items].
    prev: list = prev_items if type(prev_items) is list else list(prev_items)
    cur: list = cur_items if type(cur_items) is list else list(cur_items)
    length: cython.Py_ssize_t = len(cur)
    most: cython.double = LIST_REWRITE_SHARE  # (a C double once compiled, then multiplied in C)
    most *= length  # more changes than this: the new list is sent whole
    common: cython.Py_ssize_t = min(len(prev), length)
    i: cython.Py_ssize_t
    # Lists of scalars first (acks, who is connected, a bullet's x and y): most are unchanged or sent whole, which a
    # count of their changes tells without building a patch. No item of such a list is patched in part.
    changed: cython.Py_ssize_t = length - common  # new items
    for i in range(common):
        value = cur[i]
        old = prev[i]
        if value is old:
            continue
        kind = type(value)
        if kind is not type(old) or not _is_scalar(kind):
            break  # an item to patch in part, or a change of type: the loop below decides
        if value != old:
            changed += 1
    else:  # every item a scalar of its old type (or the same object)
        if changed == 0 and len(prev) == length:
            return UNCHANGED
        if changed > most:
            if len(prev) == length:
                steps = _steps(prev, cur, length)
                if steps is not None:
                    return steps
            return [REPLACE, cur_items]
    ops: list = []
    partial: cython.bint = False  # some item is patched in part (an object patch or a list patch)
    for i in range(common):
        value = cur[i]
        old = prev[i]
        if value is old:
            continue
        patch = _field_patch(old, value, keys)
        if patch is not UNCHANGED:
            ops.append(i)
            ops.append(patch)
            partial = partial or type(patch) is dict or (type(patch) is list and patch[0] != REPLACE)
    return _list_patch(ops, partial, cur, cur_items, common, len(prev), most)


@cython.cfunc
def _steps(prev: list, cur: list, length: cython.Py_ssize_t) -> object:
    """[ADD, step, ...] when both lists are integers of 64 bits and every step is in ADD_STEP_MIN..ADD_STEP_MAX; else
    None. (Acks: every seat's moves by one most ticks.)"""
    out: list = [ADD]
    i: cython.Py_ssize_t
    for i in range(length):
        old = prev[i]
        new = cur[i]
        if type(old) is not int or type(new) is not int:
            return None
        step = _int_step(old, new)
        if step is None:
            return None
        out.append(step)
    return out


@cython.cfunc
def _int_step(old: object, new: object) -> object:
    """new - old when both are integers of 64 bits and the step is in range, else None."""
    if cython.compiled:
        overflow: cython.int = 0
        a: cython.longlong = PyLong_AsLongLongAndOverflow(old, cython.address(overflow))
        if overflow != 0:
            return None
        b: cython.longlong = PyLong_AsLongLongAndOverflow(new, cython.address(overflow))
        if overflow != 0:
            return None
        return _step_between(a, b)
    if not (_INT64_MIN <= old <= _INT64_MAX and _INT64_MIN <= new <= _INT64_MAX):
        return None
    step = new - old
    return step if ADD_STEP_MIN <= step <= ADD_STEP_MAX else None


@cython.cfunc
def _step_between(a: cython.longlong, b: cython.longlong) -> object:
    """b - a if it is in ADD_STEP_MIN..ADD_STEP_MAX, else None (C arithmetic without overflow: the distance is taken
    unsigned, from the lower to the higher)."""
    up: cython.ulonglong
    if b >= a:
        up = cython.cast(cython.ulonglong, b) - cython.cast(cython.ulonglong, a)
        return cython.cast(cython.longlong, up) if up <= _STEP_UP_MAX else None
    up = cython.cast(cython.ulonglong, a) - cython.cast(cython.ulonglong, b)
    return -cython.cast(cython.longlong, up) if up <= _STEP_DOWN_MAX else None


@cython.cfunc
def _list_patch(
    ops: list, partial: cython.bint, cur: list, cur_items: Any, common: cython.Py_ssize_t,
    old_length: cython.Py_ssize_t, most: cython.double,
) -> Any:
    """A list's patch, from the changes of the items both lists have (`ops`: index, patch, index, patch...; `partial`:
    some are patched in part): new items whole, then the shortest form (the module's docstring)."""
    length: cython.Py_ssize_t = len(cur)
    i: cython.Py_ssize_t
    for i in range(common, length):
        ops.append(i)
        ops.append(_whole(cur[i]))
    if not ops and old_length == length:
        return UNCHANGED
    if partial and len(ops) == 2 * length and old_length == length:
        return [EACH, *ops[1::2]]
    if not partial and len(ops) // 2 > most:
        return [REPLACE, cur_items]
    return [LIST, length, *ops]


# --- Shadow: the previous value, as a stream keeps it between two diffs ---------------------------------------------
#
# A stream diffs each snapshot against the one before, which by then is a tick old: its dicts, lists and floats are
# some forty objects scattered over the heap, out of the CPU's cache after hundreds of other matches' ticks, and
# freeing them a tick later costs as much again. Compiled, a Shadow keeps instead a copy of the value in two flat
# arrays, one entry per item in depth-first order (a tag; a number, a float, or a container's count and subtree size), written
# while the value is still in the cache: the next diff reads them in order, and the value itself is freed at once.
# shadow_diff(shadow, cur) gives exactly diff(previous, cur) (tests/games/test_delta_codec.py compares them). Strings,
# dict keys and any other object are kept by reference (`refs`), so "the same object" still means what it does in
# diff(). Not compiled, a Shadow simply holds the previous value.

# Entry tags. A _KEY entry (a dict key, by reference) comes before each of a dict's values.
_NONE = cython.declare(cython.int, 0)
_TRUE = cython.declare(cython.int, 1)
_FALSE = cython.declare(cython.int, 2)
_INT = cython.declare(cython.int, 3)  # an int that fits in 64 bits (others are _OBJ)
_FLOAT = cython.declare(cython.int, 4)  # any float but nan (which is _OBJ: only the same nan object is unchanged)
_STR = cython.declare(cython.int, 5)
_OBJ = cython.declare(cython.int, 6)  # anything else, by reference
_KEY = cython.declare(cython.int, 7)
# A _KEY entry whose key has number k in the key table the writer was given (shadow_delta) is tagged _KEY_NUMBERED + k
# instead, for k below _KEY_NUMBERS: a changed value's key is then written from its entry, without the table lookup
# (a tenth of a written arena delta). The number goes from entry to entry while the key stays the same object.
_KEY_NUMBERED = cython.declare(cython.int, 16)
_KEY_NUMBERS = cython.declare(cython.int, 200)
# Containers last: _span() tells them by `tag >= _DICT`.
_DICT = cython.declare(cython.int, 253)
_LIST = cython.declare(cython.int, 254)
_TUPLE = cython.declare(cython.int, 255)
# A dict with more keys than this is diffed from a copy rebuilt from its entries (a bit mask tracks which keys matched).
_MAX_SHADOW_KEYS = cython.declare(cython.int, 64)
# A container entry's length: its word's low 32 bits. Declared, so that the mask is a C constant: as a literal past
# C's int range, Cython made it a Python int, and every _count() a Python `&` on a new int object (a sixth of a diff).
_LOW_32 = cython.declare(cython.longlong, 0xFFFFFFFF)


@cython.cclass
class Shadow:
    """What shadow_diff() diffs against: the value last passed to keep() or shadow_diff().

    Two sets of entries: the kept value's (refs, tags, words...), which the diff reads, and the next value's (next_*),
    which the diff writes as it walks the new value, entry by entry, so that one walk does both; then the two swap.
    (Diffing, then recording the new value in a second walk, cost 38.3k instructions per arena snapshot against 35.3k:
    valgrind, docs/benchmarks.md.)"""

    value: object  # not compiled: the value itself
    # Strings, dict keys and other objects the entries refer to (by address), kept alive here: the first `nrefs` are
    # the kept value's. The list is reused from one value to the next (slots overwritten, never shrunk): the few
    # past `nrefs` are held a little longer, and the list is not reallocated every tick.
    refs: list
    nrefs: cython.Py_ssize_t
    tags: bytearray
    # Per entry, 8 bytes: an int, a float's bits, an object's address, or for a container its length (low 32 bits)
    # and its span (high 32 bits: its own entry and all of its items'). One array, not a second one for spans: a
    # process of 250 matches runs through every match's shadow each tick, and the spans' array was as many cache
    # lines again as the words'.
    words: bytearray
    size: cython.Py_ssize_t
    cap: cython.Py_ssize_t
    t: cython.pointer(cython.uchar)
    w: cython.pointer(cython.longlong)
    # The same for the value being recorded.
    next_refs: list
    next_nrefs: cython.Py_ssize_t
    next_tags: bytearray
    next_words: bytearray
    next_size: cython.Py_ssize_t
    next_cap: cython.Py_ssize_t
    next_t: cython.pointer(cython.uchar)
    next_w: cython.pointer(cython.longlong)
    # The key table the kept value's numbered _KEY entries are numbers of (the last shadow_delta's), and whether the
    # walk under way may use them: only a walk with the same table.
    numbered: object
    numbers_ok: cython.bint

    def __init__(self) -> None:
        self.value = None
        self.refs = []
        self.nrefs = 0
        self.tags = bytearray()
        self.words = bytearray()
        self.size = 0
        self.cap = 0
        self.next_refs = []
        self.next_nrefs = 0
        self.next_tags = bytearray()
        self.next_words = bytearray()
        self.next_size = 0
        self.next_cap = 0
        self.numbered = None
        self.numbers_ok = False


def keep(shadow: Shadow, value: Any) -> None:
    """`value` becomes what the next shadow_diff() diffs against."""
    _keep(shadow, value)  # (_keep, not keep: the end of this module rebinds keep to its compiled copy)


def shadow_diff(shadow: Shadow, cur: Any, keys: dict[str, int] = NO_KEYS) -> Any:
    """diff(previous, cur, keys), `previous` being the value `shadow` keeps; then `shadow` keeps `cur`."""
    if cython.compiled:
        shadow.next_size = 0
        shadow.next_nrefs = 0
        patch = _sdiff(shadow, 0, cur, keys)  # (which records `cur` as it goes)
        _swap(shadow)
    else:
        patch = _diff(shadow.value, cur, keys)
        shadow.value = cur
    return patch


@cython.cfunc
def _keep(shadow: Shadow, value: Any) -> cython.void:
    if cython.compiled:
        shadow.next_size = 0
        shadow.next_nrefs = 0
        _record(shadow, value)
        _swap(shadow)
    else:
        shadow.value = value


@cython.cfunc
def _swap(sh: Shadow) -> cython.void:
    """The recorded value becomes the kept one; the kept one's arrays (and references, until overwritten) are reused
    for the next."""
    sh.refs, sh.next_refs = sh.next_refs, sh.refs
    sh.nrefs, sh.next_nrefs = sh.next_nrefs, sh.nrefs
    sh.tags, sh.next_tags = sh.next_tags, sh.tags
    sh.words, sh.next_words = sh.next_words, sh.words
    sh.size, sh.next_size = sh.next_size, sh.size
    sh.cap, sh.next_cap = sh.next_cap, sh.cap
    sh.t, sh.next_t = sh.next_t, sh.t
    sh.w, sh.next_w = sh.next_w, sh.w


@cython.cfunc
def _grow(sh: Shadow) -> cython.void:
    """Room for more entries of the value being recorded."""
    more: cython.Py_ssize_t = sh.next_cap if sh.next_cap else 64
    sh.next_tags.extend(bytes(more))
    sh.next_words.extend(bytes(8 * more))
    sh.next_cap += more
    sh.next_t = cython.cast(cython.pointer(cython.uchar), PyByteArray_AS_STRING(sh.next_tags))
    sh.next_w = cython.cast(cython.pointer(cython.longlong), PyByteArray_AS_STRING(sh.next_words))


@cython.cfunc
@cython.inline
def _entry(sh: Shadow, tag: cython.int, word: cython.longlong) -> cython.Py_ssize_t:
    """A new entry of the value being recorded; its index there."""
    if sh.next_size == sh.next_cap:
        _grow(sh)
    at: cython.Py_ssize_t = sh.next_size
    sh.next_t[at] = tag
    sh.next_w[at] = word
    sh.next_size = at + 1
    return at


@cython.cfunc
@cython.inline
def _ref(sh: Shadow, value: object) -> cython.longlong:
    """`value` kept alive by the shadow (for the value being recorded); its address, for an entry."""
    n: cython.Py_ssize_t = sh.next_nrefs
    refs: list = sh.next_refs
    if n < len(refs):
        # Most slots already hold the same object (a key, say: the list is the one of two values ago, which had the
        # same shape): then there is nothing to store, and no reference counts to change.
        if PyList_GET_ITEM(refs, n) != cython.cast(cython.pointer(PyObject), value):
            refs[n] = value
    else:
        refs.append(value)
    sh.next_nrefs = n + 1
    return _address(value)


@cython.cfunc
@cython.inline
def _address(value: object) -> cython.longlong:
    return cython.cast(cython.longlong, cython.cast(cython.pointer(PyObject), value))


@cython.cfunc
@cython.inline
def _object(sh: Shadow, at: cython.Py_ssize_t) -> object:
    """The object an _STR, _OBJ or _KEY entry refers to."""
    return cython.cast(object, cython.cast(cython.pointer(PyObject), sh.w[at]))


@cython.cfunc
def _record(sh: Shadow, value: object) -> cython.void:
    """`value`'s entries, appended to the value being recorded."""
    kind = type(value)
    at: cython.Py_ssize_t
    overflow: cython.int = 0
    number: cython.longlong
    real: cython.double
    if kind is float:
        real = value
        if real == real:
            at = _entry(sh, _FLOAT, 0)
            cython.cast(cython.pointer(cython.double), sh.next_w)[at] = real
        else:
            _entry(sh, _OBJ, _ref(sh, value))
    elif kind is dict:
        at = _entry(sh, _DICT, len(value))
        place: cython.Py_ssize_t = 0
        key: cython.pointer(PyObject) = cython.NULL
        item: cython.pointer(PyObject) = cython.NULL
        while PyDict_Next(value, cython.address(place), cython.address(key), cython.address(item)):
            _entry(sh, _KEY, _ref(sh, cython.cast(object, key)))
            _record(sh, cython.cast(object, item))
        _close(sh, at)
    elif kind is list or kind is tuple:
        at = _entry(sh, _LIST if kind is list else _TUPLE, len(value))
        for child in value:
            _record(sh, child)
        _close(sh, at)
    elif kind is int:
        number = PyLong_AsLongLongAndOverflow(value, cython.address(overflow))
        if overflow == 0:
            _entry(sh, _INT, number)
        else:
            _entry(sh, _OBJ, _ref(sh, value))
    elif value is True:
        _entry(sh, _TRUE, 0)
    elif value is False:
        _entry(sh, _FALSE, 0)
    elif value is None:
        _entry(sh, _NONE, 0)
    else:  # str and anything else
        _entry(sh, _STR if kind is str else _OBJ, _ref(sh, value))


@cython.cfunc
@cython.inline
def _close(sh: Shadow, at: cython.Py_ssize_t) -> cython.void:
    """The container recorded at `at` has all its items: its span goes in its word's high 32 bits."""
    sh.next_w[at] |= cython.cast(cython.longlong, sh.next_size - at) << 32


@cython.cfunc
@cython.inline
def _span(sh: Shadow, at: cython.Py_ssize_t) -> cython.Py_ssize_t:
    tag: cython.int = sh.t[at]
    return sh.w[at] >> 32 if tag >= _DICT else 1


@cython.cfunc
@cython.inline
def _count(sh: Shadow, at: cython.Py_ssize_t) -> cython.Py_ssize_t:
    """A container entry's length (its word's low 32 bits; _span has the high ones)."""
    return sh.w[at] & _LOW_32


@cython.cfunc
@cython.inline
def _is_ref(sh: Shadow, at: cython.Py_ssize_t, value: object) -> cython.bint:
    """The entry is `value` itself, kept by reference (diff()'s `prev is cur` for an object it keeps). Only the list
    scan needs it apart: elsewhere _sdiff's _equals finds the same object unchanged."""
    tag: cython.int = sh.t[at]
    return (tag == _OBJ or tag == _STR) and sh.w[at] == _address(value)


@cython.cfunc
def _scalar_kind_is(sh: Shadow, at: cython.Py_ssize_t, kind: type) -> cython.bint:
    """The entry is a scalar of exactly this type (diff()'s `kind is type(old) and _is_scalar(kind)`)."""
    tag: cython.int = sh.t[at]
    if tag == _FLOAT:
        return kind is float
    if tag == _INT:
        return kind is int
    if tag == _TRUE or tag == _FALSE:
        return kind is bool
    if tag == _NONE:
        return kind is type(None)
    if tag == _STR:
        return kind is str
    if tag == _OBJ:
        return type(_object(sh, at)) is kind and _is_scalar(kind)
    return False


@cython.cfunc
def _equals(sh: Shadow, at: cython.Py_ssize_t, cur: object, kind: type) -> cython.bint:
    """A scalar or object entry that is `cur`, or of its exact type and equal (diff()'s `prev is cur or (kind is
    prev_kind and prev == cur)`). False for containers."""
    tag: cython.int = sh.t[at]
    overflow: cython.int = 0
    number: cython.longlong
    real: cython.double
    if tag == _FLOAT:
        if kind is not float:
            return False
        real = cur
        return cython.cast(cython.pointer(cython.double), sh.w)[at] == real
    if tag == _INT:
        if kind is not int:
            return False
        number = PyLong_AsLongLongAndOverflow(cur, cython.address(overflow))
        return overflow == 0 and number == sh.w[at]
    if tag == _TRUE:
        return cur is True
    if tag == _FALSE:
        return cur is False
    if tag == _NONE:
        return cur is None
    if tag == _STR or tag == _OBJ:
        if sh.w[at] == _address(cur):
            return True
        old = _object(sh, at)
        return type(old) is kind and old == cur
    return False


# _same_scalar's answers besides "not mine" (-1): the value is unchanged, or changed.
_CHANGED = cython.declare(cython.int, 0)
_SAME = cython.declare(cython.int, 1)


@cython.cfunc
@cython.inline
@cython.exceptval(-2)
def _same_scalar(sh: Shadow, at: cython.Py_ssize_t, tag: cython.int, cur: object, kind: type) -> cython.int:
    """A float, an int of 64 bits or a bool where the same type was (most of a snapshot): recorded and compared in one
    place, rather than by _record then _equals, each finding the type again (the answer is theirs). _SAME, _CHANGED,
    or -1 with nothing recorded for anything else."""
    overflow: cython.int = 0
    number: cython.longlong
    real: cython.double
    at_next: cython.Py_ssize_t
    if kind is float and tag == _FLOAT:
        real = cur
        if real == real:  # (nan is recorded as an object)
            at_next = _entry(sh, _FLOAT, 0)
            cython.cast(cython.pointer(cython.double), sh.next_w)[at_next] = real
            return _SAME if cython.cast(cython.pointer(cython.double), sh.w)[at] == real else _CHANGED
    elif kind is int and tag == _INT:
        number = PyLong_AsLongLongAndOverflow(cur, cython.address(overflow))
        if overflow == 0:
            _entry(sh, _INT, number)
            return _SAME if number == sh.w[at] else _CHANGED
    elif kind is bool and (tag == _TRUE or tag == _FALSE):
        _entry(sh, _TRUE if cur is True else _FALSE, 0)
        return _SAME if (tag == _TRUE) == (cur is True) else _CHANGED
    return -1


@cython.cfunc
def _sdiff(sh: Shadow, at: cython.Py_ssize_t, cur: object, keys: dict) -> object:
    """_diff(the value at entry `at`, cur). Every _sdiff function also records `cur` (appends its entries to the value
    being recorded, as _record would)."""
    tag: cython.int = sh.t[at]
    kind = type(cur)
    same: cython.int = _same_scalar(sh, at, tag, cur, kind)
    if same >= 0:
        return UNCHANGED if same else cur
    if kind is dict and tag == _DICT:
        return _sdiff_dict(sh, at, cur, keys)
    if (kind is list or kind is tuple) and (tag == _LIST or tag == _TUPLE):
        return _sdiff_list(sh, at, cur, keys)
    _record(sh, cur)
    if kind is dict or kind is list or kind is tuple:
        return [REPLACE, cur]
    if _equals(sh, at, cur, kind):
        return UNCHANGED
    return cur if _is_scalar(kind) else [REPLACE, cur]


@cython.cfunc
@cython.exceptval(-2)
def _old_key(sh: Shadow, at: cython.Py_ssize_t, count: cython.Py_ssize_t, key: object,
             matched: cython.pointer(cython.ulonglong)) -> cython.Py_ssize_t:
    """The entry of the value under `key` in the dict at `at` (its key the same object, or ==, as a dict lookup finds
    it), marked as matched (bit j for its j-th key); -1 when that dict has no such key."""
    child: cython.Py_ssize_t = at + 1
    j: cython.Py_ssize_t
    for j in range(count):
        if sh.w[child] == _address(key) or PyObject_RichCompareBool(_object(sh, child), key, Py_EQ):
            matched[0] |= cython.cast(cython.ulonglong, 1) << j
            return child + 1
        child += 1 + _span(sh, child + 1)
    return -1


@cython.cfunc
def _sdiff_dict(sh: Shadow, at: cython.Py_ssize_t, cur: dict, keys: dict) -> object:
    count: cython.Py_ssize_t = _count(sh, at)
    if count == len(cur):
        same = _sdiff_same_keys(sh, at, cur, keys)
        if same is not _MISSING:
            return same
    if count > _MAX_SHADOW_KEYS:
        patch = _diff_dict(_rebuild(sh, at), cur, keys)
        _record(sh, cur)
        return patch
    dict_at: cython.Py_ssize_t = _entry(sh, _DICT, len(cur))
    changes: dict = {}
    matched: cython.ulonglong = 0
    found: cython.Py_ssize_t = 0
    j: cython.Py_ssize_t
    child: cython.Py_ssize_t
    value_at: cython.Py_ssize_t
    for key, value in cur.items():
        _entry(sh, _KEY, _ref(sh, key))
        value_at = _old_key(sh, at, count, key, cython.address(matched))
        if value_at < 0:
            changes[keys.get(key, key)] = _whole(value)
            _record(sh, value)
            continue
        found += 1
        patch = _sdiff(sh, value_at, value, keys)
        if patch is not UNCHANGED:
            changes[keys.get(key, key)] = patch
    _close(sh, dict_at)
    if found < count:
        child = at + 1
        for j in range(count):
            if not (matched >> j) & 1:
                key = _object(sh, child)
                changes[keys.get(key, key)] = DELETE_MARK
            child += 1 + _span(sh, child + 1)
    return changes if changes else UNCHANGED


@cython.cfunc
def _sdiff_same_keys(sh: Shadow, at: cython.Py_ssize_t, cur: dict, keys: dict) -> object:
    """_diff_same_keys against entries: both walked side by side while the keys are the same objects. _MISSING when
    they are not, with nothing recorded."""
    changes: dict = {}
    place: cython.Py_ssize_t = 0
    child: cython.Py_ssize_t = at + 1
    key: cython.pointer(PyObject) = cython.NULL
    item: cython.pointer(PyObject) = cython.NULL
    recorded: cython.Py_ssize_t = sh.next_size
    referred: cython.Py_ssize_t = sh.next_nrefs
    dict_at: cython.Py_ssize_t = _entry(sh, _DICT, len(cur))
    while PyDict_Next(cur, cython.address(place), cython.address(key), cython.address(item)):
        if sh.w[child] != cython.cast(cython.longlong, key):
            sh.next_size = recorded  # what this walk recorded goes: the caller records the dict its own way
            sh.next_nrefs = referred
            return _MISSING
        name = cython.cast(object, key)
        _entry(sh, _KEY, _ref(sh, name))
        child += 1
        patch = _sdiff(sh, child, cython.cast(object, item), keys)
        if patch is not UNCHANGED:
            changes[keys.get(name, name)] = patch
        child += _span(sh, child)
    _close(sh, dict_at)
    return changes if changes else UNCHANGED


@cython.cfunc
@cython.exceptval(-2)
def _scalar_changes(sh: Shadow, at: cython.Py_ssize_t, cur: list, common: cython.Py_ssize_t) -> cython.Py_ssize_t:
    """How many of the first `common` items of `cur` differ from the entries of the list at `at`, when each is a
    scalar of its entry's type (or the same object); -1 when one is not (the items are then diffed one by one)."""
    changed: cython.Py_ssize_t = 0
    child: cython.Py_ssize_t = at + 1
    i: cython.Py_ssize_t
    for i in range(common):
        value = cur[i]
        if _is_ref(sh, child, value):
            child += 1
            continue
        kind = type(value)
        if not _scalar_kind_is(sh, child, kind):
            return -1
        if not _equals(sh, child, value, kind):
            changed += 1
        child += 1
    return changed


@cython.cfunc
def _sdiff_list(sh: Shadow, at: cython.Py_ssize_t, cur_items: object, keys: dict) -> object:
    """_diff_list against entries, step for step."""
    cur: list = cur_items if type(cur_items) is list else list(cur_items)
    length: cython.Py_ssize_t = len(cur)
    old_length: cython.Py_ssize_t = _count(sh, at)
    most: cython.double = LIST_REWRITE_SHARE
    most *= length
    common: cython.Py_ssize_t = min(old_length, length)
    i: cython.Py_ssize_t
    child: cython.Py_ssize_t
    changed: cython.Py_ssize_t = _scalar_changes(sh, at, cur, common)
    if changed >= 0:  # every item a scalar of its entry's type: no item to patch in part
        changed += length - common  # (and the new items)
        if changed == 0 and old_length == length:
            _record(sh, cur_items)
            return UNCHANGED
        if changed > most:
            steps = _shadow_steps(sh, at + 1, cur, length) if old_length == length else None
            _record(sh, cur_items)
            return steps if steps is not None else [REPLACE, cur_items]
    list_at: cython.Py_ssize_t = _entry(sh, _LIST if type(cur_items) is list else _TUPLE, length)
    ops: list = []
    partial: cython.bint = False
    child = at + 1
    for i in range(common):
        value = cur[i]
        item_at: cython.Py_ssize_t = child
        child += _span(sh, child)
        patch = _sdiff(sh, item_at, value, keys)
        if patch is not UNCHANGED:
            ops.append(i)
            ops.append(patch)
            partial = partial or type(patch) is dict or (type(patch) is list and patch[0] != REPLACE)
    for i in range(common, length):
        _record(sh, cur[i])
    _close(sh, list_at)
    return _list_patch(ops, partial, cur, cur_items, common, old_length, most)


@cython.cfunc
def _shadow_steps(sh: Shadow, child: cython.Py_ssize_t, cur: list, length: cython.Py_ssize_t) -> object:
    """_steps against a list of scalar entries from `child` on (one entry each)."""
    out: list = [ADD]
    i: cython.Py_ssize_t
    overflow: cython.int = 0
    new: cython.longlong
    for i in range(length):
        value = cur[i]
        if sh.t[child] != _INT or type(value) is not int:
            return None
        new = PyLong_AsLongLongAndOverflow(value, cython.address(overflow))
        if overflow != 0:
            return None
        step = _step_between(sh.w[child], new)
        if step is None:
            return None
        out.append(step)
        child += 1
    return out


@cython.cfunc
def _rebuild(sh: Shadow, at: cython.Py_ssize_t) -> object:
    """The value of entry `at`, as objects again (equal, and the same objects where kept by reference)."""
    tag: cython.int = sh.t[at]
    count: cython.Py_ssize_t
    child: cython.Py_ssize_t = at + 1
    if tag == _DICT:
        out: dict = {}
        count = _count(sh, at)
        while count > 0:
            out[_object(sh, child)] = _rebuild(sh, child + 1)
            child += 1 + _span(sh, child + 1)
            count -= 1
        return out
    if tag == _LIST or tag == _TUPLE:
        items: list = []
        count = _count(sh, at)
        while count > 0:
            items.append(_rebuild(sh, child))
            child += _span(sh, child)
            count -= 1
        return items if tag == _LIST else tuple(items)
    if tag == _FLOAT:
        return cython.cast(cython.pointer(cython.double), sh.w)[at]
    if tag == _INT:
        return sh.w[at]
    if tag == _TRUE:
        return True
    if tag == _FALSE:
        return False
    if tag == _NONE:
        return None
    return _object(sh, at)


# --- MessagePack, written here -------------------------------------------------------------------------------------
#
# Every protocol v2 frame is a delta or a keyframe in msgpack. msgpack's own Packer spends most of a delta's cost on
# its per-object checks (1.6 µs for an arena delta of ~140 bytes); written here, the same bytes cost about a third.
# Only exact types are written: anything else (an IntEnum, an OrderedDict, bytes, an int past 64 bits, a string
# that is not valid UTF-8, nesting deeper than msgpack allows) raises NotPacked, and protocol.py then uses msgpack's
# packer for the whole message, so the bytes are always msgpack's own (tests/games/test_delta_codec.py compares them).


class NotPacked(Exception):
    """pack() leaves this value to msgpack's own packer."""


# msgpack's default nesting limit is 511 levels; deeper than this, its packer raises the error it raises.
PACK_DEPTH_MAX = 500
# As a C constant for the compiled code, which compares every container's depth with it: against the Python int, each
# comparison made an int object and compared in Python (a twentieth of a written delta).
_DEPTH_MAX = cython.declare(cython.int, 500)
assert _DEPTH_MAX == PACK_DEPTH_MAX


@cython.cclass
class _Writer:
    """pack()'s output buffer, reused from one call to the next (grown, never shrunk)."""

    data: bytearray
    p: cython.pointer(cython.uchar)
    size: cython.Py_ssize_t
    cap: cython.Py_ssize_t

    def __init__(self) -> None:
        self.data = bytearray()
        self.size = 0
        self.cap = 0


_WRITER = _Writer()


def pack(value: Any, single_floats: cython.bint = True) -> bytes:
    """`value` in MessagePack: what msgpack.Packer(use_bin_type=True, use_single_float=single_floats).pack(value)
    gives. Compiled only (NotPacked otherwise). A call runs no Python code and so keeps the GIL from start to end:
    no other thread writes into the one buffer meanwhile. (A call that starts inside another, from a finalizer the
    collector runs while NotPacked is being raised, resets the buffer; the outer call is raising, and never reads it.)"""
    if not cython.compiled:
        raise NotPacked("the compiled module is not built")
    w: _Writer = _WRITER
    w.size = 0
    _pack(w, value, single_floats, 0)
    return PyBytes_FromStringAndSize(cython.cast(cython.p_char, w.p), w.size)


@cython.cfunc
@cython.exceptval(-1)
def _widen(w: _Writer, need: cython.Py_ssize_t) -> cython.int:
    cap: cython.Py_ssize_t = max(2 * w.cap, need, 512)
    w.data.extend(bytes(cap - w.cap))
    w.cap = cap
    w.p = cython.cast(cython.pointer(cython.uchar), PyByteArray_AS_STRING(w.data))
    return 0


@cython.cfunc
@cython.inline
@cython.exceptval(-1)
def _reserve(w: _Writer, more: cython.Py_ssize_t) -> cython.int:
    """Room for `more` bytes at w.p + w.size (the caller adds what it writes to w.size)."""
    if w.size + more > w.cap:
        return _widen(w, w.size + more)
    return 0


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
def _put_be(p: cython.pointer(cython.uchar), value: cython.ulonglong, count: cython.int) -> cython.void:
    """`value`'s low `count` bytes, big-endian."""
    i: cython.int
    for i in range(count):
        p[i] = cython.cast(cython.uchar, value >> (8 * (count - 1 - i)))


@cython.cfunc
@cython.exceptval(-1)
def _pack_header(w: _Writer, length: cython.Py_ssize_t, fix: cython.int, fix_max: cython.Py_ssize_t, code8: cython.int,
                 code16: cython.int, code32: cython.int) -> cython.int:
    """A string's, an array's or a map's length, in the shortest form msgpack uses (code8 < 0: no 8-bit form)."""
    _reserve(w, 5)
    p: cython.pointer(cython.uchar) = w.p + w.size
    if length < fix_max:
        p[0] = fix | length
        w.size += 1
    elif code8 >= 0 and length < 0x100:
        p[0] = code8
        p[1] = length
        w.size += 2
    elif length < 0x10000:
        p[0] = code16
        _put_be(p + 1, length, 2)
        w.size += 3
    else:
        p[0] = code32
        _put_be(p + 1, length, 4)
        w.size += 5
    return 0


@cython.cfunc
@cython.exceptval(-1)
def _pack_int(w: _Writer, number: cython.longlong) -> cython.int:
    """msgpack's choice: fixints, then the fewest bytes, unsigned forms for positive numbers."""
    _reserve(w, 9)
    p: cython.pointer(cython.uchar) = w.p + w.size
    if -32 <= number < 0x80:
        p[0] = cython.cast(cython.uchar, number)
        w.size += 1
    elif number >= 0:
        if number < 0x100:
            p[0] = 0xCC
            p[1] = number
            w.size += 2
        elif number < 0x10000:
            p[0] = 0xCD
            _put_be(p + 1, number, 2)
            w.size += 3
        elif number < 0x100000000:
            p[0] = 0xCE
            _put_be(p + 1, number, 4)
            w.size += 5
        else:
            p[0] = 0xCF
            _put_be(p + 1, number, 8)
            w.size += 9
    elif number >= -0x80:
        p[0] = 0xD0
        p[1] = cython.cast(cython.uchar, number)
        w.size += 2
    elif number >= -0x8000:
        p[0] = 0xD1
        _put_be(p + 1, cython.cast(cython.ulonglong, number), 2)
        w.size += 3
    elif number >= -0x80000000:
        p[0] = 0xD2
        _put_be(p + 1, cython.cast(cython.ulonglong, number), 4)
        w.size += 5
    else:
        p[0] = 0xD3
        _put_be(p + 1, cython.cast(cython.ulonglong, number), 8)
        w.size += 9
    return 0


@cython.cfunc
@cython.exceptval(-1)
def _pack_float(w: _Writer, real: cython.double, single_floats: cython.bint) -> cython.int:
    p: cython.pointer(cython.uchar)
    single: cython.float
    bits32: cython.uint = 0
    bits64: cython.ulonglong = 0
    if single_floats:
        single = cython.cast(cython.float, real)  # a C cast, as msgpack's (PyFloat_Pack4)
        if isinf(single) and not isinf(real):
            raise NotPacked("past float32's range")  # (msgpack's packer raises OverflowError)
        _reserve(w, 5)
        p = w.p + w.size
        p[0] = 0xCA
        memcpy(cython.address(bits32), cython.address(single), 4)  # (not a pointer cast: C's aliasing rules)
        _put_be(p + 1, bits32, 4)
        w.size += 5
    else:
        _reserve(w, 9)
        p = w.p + w.size
        p[0] = 0xCB
        memcpy(cython.address(bits64), cython.address(real), 8)
        _put_be(p + 1, bits64, 8)
        w.size += 9
    return 0


@cython.cfunc
@cython.exceptval(-1)
def _pack(w: _Writer, value: object, single_floats: cython.bint, depth: cython.int) -> cython.int:
    kind = type(value)
    p: cython.pointer(cython.uchar)
    overflow: cython.int = 0
    number: cython.longlong
    length: cython.Py_ssize_t = 0
    text: cython.p_const_char
    if kind is float:
        _pack_float(w, value, single_floats)
    elif kind is int:
        number = PyLong_AsLongLongAndOverflow(value, cython.address(overflow))
        if overflow != 0:
            raise NotPacked("an int past 64 bits")
        _pack_int(w, number)
    elif kind is str:
        try:
            text = PyUnicode_AsUTF8AndSize(value, cython.address(length))
        except UnicodeEncodeError:
            raise NotPacked("not valid UTF-8") from None
        _pack_header(w, length, 0xA0, 32, 0xD9, 0xDA, 0xDB)
        _reserve(w, length)
        p = w.p + w.size
        memcpy(p, text, length)
        w.size += length
    elif kind is dict:
        if depth >= _DEPTH_MAX:
            raise NotPacked("nested too deep")
        _pack_header(w, len(value), 0x80, 16, -1, 0xDE, 0xDF)
        place: cython.Py_ssize_t = 0
        key: cython.pointer(PyObject) = cython.NULL
        item: cython.pointer(PyObject) = cython.NULL
        while PyDict_Next(value, cython.address(place), cython.address(key), cython.address(item)):
            _pack(w, cython.cast(object, key), single_floats, depth + 1)
            _pack(w, cython.cast(object, item), single_floats, depth + 1)
    elif kind is list or kind is tuple:
        if depth >= _DEPTH_MAX:
            raise NotPacked("nested too deep")
        _pack_header(w, len(value), 0x90, 16, -1, 0xDC, 0xDD)
        for child in value:
            _pack(w, child, single_floats, depth + 1)
    elif value is None:
        _reserve(w, 1)
        p = w.p + w.size
        p[0] = 0xC0
        w.size += 1
    elif value is True or value is False:
        _reserve(w, 1)
        p = w.p + w.size
        p[0] = 0xC3 if value is True else 0xC2
        w.size += 1
    else:
        raise NotPacked(kind.__name__)
    return 0


# --- A delta written as MessagePack by the diff itself ----------------------------------------------------------------
#
# shadow_delta() is pack(delta_message(n, shadow_diff(shadow, cur, keys), events), True), byte for byte, without the
# patch: each change is written where the diff finds it, so no dict or list is built for the patch, freed after, and
# walked again by pack(). (tests/games/test_delta_codec.py compares the two over chains of random values and arena
# snapshots.) A container's header is written once its count is known: its items go first, then move up to make room
# (a few bytes, in the CPU's cache). A list whose form is decided by its items' patches (docstring: LIST, EACH or the
# new list whole) keeps where each item starts, for up to _MAX_WRITTEN_OPS changed items; a longer one, and a dict of
# more than _MAX_SHADOW_KEYS keys, is diffed into objects and those are packed.

_W_UNCHANGED = cython.declare(cython.int, 0)  # nothing written
_W_WHOLE = cython.declare(cython.int, 1)  # a scalar or [REPLACE, value]
_W_PARTIAL = cython.declare(cython.int, 2)  # an object patch, or a list patch other than REPLACE
_W_MISSING = cython.declare(cython.int, 3)  # (_wdiff_same_keys: the keys differ; nothing written or recorded)
_MAX_WRITTEN_OPS = cython.declare(cython.int, 64)


def shadow_delta(shadow: Shadow, cur: Any, keys: dict[str, int], n: int, events: Any) -> bytes:
    """pack(delta_message(n, shadow_diff(shadow, cur, keys), events), True): the delta of stream number `n` in
    MessagePack, with 32-bit floats. Compiled only (NotPacked otherwise); NotPacked for a value pack() leaves to
    msgpack, with the shadow as it was (the caller then takes the object path)."""
    if not cython.compiled:
        raise NotPacked("the compiled module is not built")
    w: _Writer = _WRITER
    w.size = 0
    shadow.next_size = 0
    shadow.next_nrefs = 0
    shadow.numbers_ok = shadow.numbered is keys
    try:
        _pack_header(w, 3 if events else 2, 0x90, 16, -1, 0xDC, 0xDD)
        _pack(w, n, True, 0)
        if _wdiff(shadow, 0, cur, keys, w, 1) == _W_UNCHANGED:
            _reserve(w, 1)
            w.p[w.size] = 0x80  # {}
            w.size += 1
        if events:
            _pack(w, events, True, 1)
    except NotPacked:
        shadow.next_size = 0  # nothing recorded is kept: the shadow still holds the previous value
        shadow.next_nrefs = 0
        raise
    _swap(shadow)
    shadow.numbered = keys  # (every numbered entry kept now was numbered from `keys`)
    return PyBytes_FromStringAndSize(cython.cast(cython.p_char, w.p), w.size)


@cython.cfunc
@cython.exceptval(-1)
def _write_key(w: _Writer, key: object, keys: dict) -> cython.int:
    """An object patch's key: its number in the table, or itself (the patch's `keys.get(key, key)`). Returns the tag
    of an entry for this key: numbered when it has a number that a tag can hold."""
    if type(key) is not str:
        raise NotPacked("a key that is not a string")  # (a number could then name two keys: the object path decides)
    number = keys.get(key)
    if number is None:
        _pack(w, key, True, 0)
        return _KEY
    _pack_int(w, number)  # (a key number: a small int)
    return _KEY_NUMBERED + number if 0 <= number < _KEY_NUMBERS else _KEY


@cython.cfunc
@cython.exceptval(-1)
def _insert_key(w: _Writer, at: cython.Py_ssize_t, key: object, keys: dict) -> cython.int:
    """_write_key, in front of the patch written from `at` on: a key is looked up and written only for a value that
    changed (most of a snapshot's do not), the patch moving up to make room. Returns _write_key's tag."""
    end: cython.Py_ssize_t = w.size
    tag: cython.int = _write_key(w, key, keys)  # after the patch first, which tells its size
    size: cython.Py_ssize_t = w.size - end
    _reserve(w, size)
    memmove(w.p + at + size, w.p + at, end - at + size)  # the patch and the key, up by the key's size
    memmove(w.p + at, w.p + end + size, size)  # the key, in front
    w.size = end + size
    return tag


@cython.cfunc
@cython.exceptval(-1)
def _write_whole(w: _Writer, value: object, depth: cython.int) -> cython.int:
    """_whole(value), written."""
    kind = type(value)
    if kind is dict or kind is list or kind is tuple:
        _reserve(w, 2)
        w.p[w.size] = 0x92  # [REPLACE, value]
        w.p[w.size + 1] = REPLACE
        w.size += 2
    return _pack(w, value, True, depth)


@cython.cfunc
@cython.inline
def _int_size(number: cython.longlong) -> cython.Py_ssize_t:
    """How many bytes _pack_int writes for `number`."""
    if -32 <= number < 0x80:
        return 1
    if number >= 0:
        return 2 if number < 0x100 else 3 if number < 0x10000 else 5 if number < 0x100000000 else 9
    return 2 if number >= -0x80 else 3 if number >= -0x8000 else 5 if number >= -0x80000000 else 9


@cython.cfunc
@cython.exceptval(-1)
def _put_header(w: _Writer, start: cython.Py_ssize_t, count: cython.Py_ssize_t, is_map: cython.bint,
                tag: cython.int, length: cython.Py_ssize_t) -> cython.int:
    """A map's or an array's header of `count` items (with `tag` >= 0 and `length` >= 0, an array's first items),
    put in front of the items written from `start` on, which move up to make room."""
    body: cython.Py_ssize_t = w.size - start
    head: cython.Py_ssize_t = 1 if count < 16 else 3 if count < 0x10000 else 5
    if tag >= 0:
        head += 1  # (a tag is a fixint)
    if length >= 0:
        head += _int_size(length)
    _reserve(w, head)
    memmove(w.p + start + head, w.p + start, body)
    w.size = start
    if is_map:
        _pack_header(w, count, 0x80, 16, -1, 0xDE, 0xDF)
    else:
        _pack_header(w, count, 0x90, 16, -1, 0xDC, 0xDD)
    if tag >= 0:
        _pack_int(w, tag)
    if length >= 0:
        _pack_int(w, length)
    w.size = start + head + body
    return 0


@cython.cfunc
@cython.exceptval(-1)
def _wdiff(sh: Shadow, at: cython.Py_ssize_t, cur: object, keys: dict, w: _Writer, depth: cython.int) -> cython.int:
    """_sdiff, with the patch written to `w`: what it wrote (_W_*). Records `cur` as _sdiff does."""
    if depth >= _DEPTH_MAX:
        raise NotPacked("nested too deep")
    tag: cython.int = sh.t[at]
    kind = type(cur)
    same: cython.int = _same_scalar(sh, at, tag, cur, kind)
    if same == _SAME:
        return _W_UNCHANGED
    if same == _CHANGED:
        if kind is float:
            _pack_float(w, cur, True)
        elif kind is int:
            _pack_int(w, sh.next_w[sh.next_size - 1])  # (the number _same_scalar just recorded)
        else:
            _reserve(w, 1)
            w.p[w.size] = 0xC3 if cur is True else 0xC2
            w.size += 1
        return _W_WHOLE
    if kind is dict and tag == _DICT:
        return _wdiff_dict(sh, at, cur, keys, w, depth)
    if (kind is list or kind is tuple) and (tag == _LIST or tag == _TUPLE):
        return _wdiff_list(sh, at, cur, keys, w, depth)
    _record(sh, cur)
    if kind is dict or kind is list or kind is tuple:
        _write_whole(w, cur, depth)
        return _W_WHOLE
    if _equals(sh, at, cur, kind):
        return _W_UNCHANGED
    if not _is_scalar(kind):
        raise NotPacked("a value of another type")  # ([REPLACE, it] on the object path, for msgpack's packer)
    _pack(w, cur, True, depth)
    return _W_WHOLE


@cython.cfunc
@cython.exceptval(-1)
def _wdiff_dict(sh: Shadow, at: cython.Py_ssize_t, cur: dict, keys: dict, w: _Writer, depth: cython.int) -> cython.int:
    """_sdiff_dict, written."""
    count: cython.Py_ssize_t = _count(sh, at)
    written: cython.int
    if count == len(cur):
        written = _wdiff_same_keys(sh, at, cur, keys, w, depth)
        if written != _W_MISSING:
            return written
    if count > _MAX_SHADOW_KEYS:
        patch = _diff_dict(_rebuild(sh, at), cur, keys)
        _record(sh, cur)
        if patch is UNCHANGED:
            return _W_UNCHANGED
        _pack(w, patch, True, depth)
        return _W_PARTIAL
    start: cython.Py_ssize_t = w.size
    dict_at: cython.Py_ssize_t = _entry(sh, _DICT, len(cur))
    changes: cython.Py_ssize_t = 0
    matched: cython.ulonglong = 0
    found: cython.Py_ssize_t = 0
    j: cython.Py_ssize_t
    child: cython.Py_ssize_t
    value_at: cython.Py_ssize_t
    before: cython.Py_ssize_t
    for key, value in cur.items():
        _entry(sh, _KEY, _ref(sh, key))
        value_at = _old_key(sh, at, count, key, cython.address(matched))
        if value_at < 0:
            _write_key(w, key, keys)
            _write_whole(w, value, depth + 1)
            _record(sh, value)
            changes += 1
            continue
        found += 1
        before = w.size
        if _wdiff(sh, value_at, value, keys, w, depth + 1) != _W_UNCHANGED:
            _insert_key(w, before, key, keys)
            changes += 1
    _close(sh, dict_at)
    if found < count:
        child = at + 1
        for j in range(count):
            if not (matched >> j) & 1:
                _write_key(w, _object(sh, child), keys)
                _reserve(w, 2)
                w.p[w.size] = 0x91  # DELETE_MARK: [DELETE]
                w.p[w.size + 1] = DELETE
                w.size += 2
                changes += 1
            child += 1 + _span(sh, child + 1)
    if changes == 0:
        return _W_UNCHANGED
    _put_header(w, start, changes, True, -1, -1)
    return _W_PARTIAL


@cython.cfunc
@cython.exceptval(-1)
def _wdiff_same_keys(sh: Shadow, at: cython.Py_ssize_t, cur: dict, keys: dict, w: _Writer,
                     depth: cython.int) -> cython.int:
    """_sdiff_same_keys, written; _W_MISSING when the keys are not the same objects, with nothing written or recorded."""
    place: cython.Py_ssize_t = 0
    child: cython.Py_ssize_t = at + 1
    key: cython.pointer(PyObject) = cython.NULL
    item: cython.pointer(PyObject) = cython.NULL
    recorded: cython.Py_ssize_t = sh.next_size
    referred: cython.Py_ssize_t = sh.next_nrefs
    start: cython.Py_ssize_t = w.size
    before: cython.Py_ssize_t
    changes: cython.Py_ssize_t = 0
    numbers_ok: cython.bint = sh.numbers_ok
    key_tag: cython.int
    key_at: cython.Py_ssize_t
    dict_at: cython.Py_ssize_t = _entry(sh, _DICT, len(cur))
    while PyDict_Next(cur, cython.address(place), cython.address(key), cython.address(item)):
        if sh.w[child] != cython.cast(cython.longlong, key):
            sh.next_size = recorded
            sh.next_nrefs = referred
            w.size = start
            return _W_MISSING
        name = cython.cast(object, key)
        key_tag = sh.t[child] if numbers_ok else _KEY  # (the same key object: the same number)
        key_at = _entry(sh, key_tag, _ref(sh, name))
        child += 1
        before = w.size
        if key_tag >= _KEY_NUMBERED:  # its number first, taken back if the value did not change
            _pack_int(w, key_tag - _KEY_NUMBERED)
            if _wdiff(sh, child, cython.cast(object, item), keys, w, depth + 1) != _W_UNCHANGED:
                changes += 1
            else:
                w.size = before
        elif _wdiff(sh, child, cython.cast(object, item), keys, w, depth + 1) != _W_UNCHANGED:
            sh.next_t[key_at] = _insert_key(w, before, name, keys)  # (numbered from now on, when it has a number)
            changes += 1
        child += _span(sh, child)
    _close(sh, dict_at)
    if changes == 0:
        return _W_UNCHANGED
    _put_header(w, start, changes, True, -1, -1)
    return _W_PARTIAL


@cython.cfunc
@cython.exceptval(-1)
def _wdiff_list(sh: Shadow, at: cython.Py_ssize_t, cur_items: object, keys: dict, w: _Writer,
                depth: cython.int) -> cython.int:
    """_sdiff_list and _list_patch, written."""
    cur: list = cur_items if type(cur_items) is list else list(cur_items)
    length: cython.Py_ssize_t = len(cur)
    old_length: cython.Py_ssize_t = _count(sh, at)
    most: cython.double = LIST_REWRITE_SHARE
    most *= length
    common: cython.Py_ssize_t = min(old_length, length)
    i: cython.Py_ssize_t
    child: cython.Py_ssize_t
    changed: cython.Py_ssize_t = _scalar_changes(sh, at, cur, common)
    if changed >= 0:  # every item a scalar of its entry's type: no item to patch in part
        changed += length - common  # (and the new items)
        if changed == 0 and old_length == length:
            _record(sh, cur_items)
            return _W_UNCHANGED
        if changed > most:
            steps = _shadow_steps(sh, at + 1, cur, length) if old_length == length else None
            _record(sh, cur_items)
            if steps is not None:
                _pack(w, steps, True, depth)
                return _W_PARTIAL
            _write_whole(w, cur_items, depth)
            return _W_WHOLE
    if length > _MAX_WRITTEN_OPS:  # more items than the offsets below can hold: diffed into objects, then packed
        patch = _sdiff_list(sh, at, cur_items, keys)
        if patch is UNCHANGED:
            return _W_UNCHANGED
        _pack(w, patch, True, depth)
        return _W_WHOLE if cython.cast(list, patch)[0] == REPLACE else _W_PARTIAL
    # Each changed item as `index, patch` from `start` on, and where each patch begins and ends (for the EACH form).
    starts = cython.declare(cython.Py_ssize_t[64])
    ends = cython.declare(cython.Py_ssize_t[64])
    ops: cython.Py_ssize_t = 0
    partial: cython.bint = False
    written: cython.int
    start: cython.Py_ssize_t = w.size
    before: cython.Py_ssize_t
    list_at: cython.Py_ssize_t = _entry(sh, _LIST if type(cur_items) is list else _TUPLE, length)
    child = at + 1
    for i in range(common):
        value = cur[i]
        item_at: cython.Py_ssize_t = child
        child += _span(sh, child)
        before = w.size
        _pack_int(w, i)
        starts[ops] = w.size
        written = _wdiff(sh, item_at, value, keys, w, depth + 1)
        if written == _W_UNCHANGED:
            w.size = before
        else:
            ends[ops] = w.size
            ops += 1
            partial = partial or written == _W_PARTIAL
    for i in range(common, length):
        _record(sh, cur[i])
        _pack_int(w, i)
        starts[ops] = w.size
        _write_whole(w, cur[i], depth + 1)
        ends[ops] = w.size
        ops += 1
    _close(sh, list_at)
    if ops == 0 and old_length == length:
        return _W_UNCHANGED
    if partial and ops == length and old_length == length:  # [EACH, patch, ...]: the indices go
        before = start
        for i in range(ops):
            memmove(w.p + before, w.p + starts[i], ends[i] - starts[i])
            before += ends[i] - starts[i]
        w.size = before
        _put_header(w, start, ops + 1, False, EACH, -1)
        return _W_PARTIAL
    if not partial and ops > most:
        w.size = start
        _write_whole(w, cur_items, depth)
        return _W_WHOLE
    _put_header(w, start, 2 * ops + 2, False, LIST, length)
    return _W_PARTIAL


def apply(prev: Any, patch: Any, keys: list[str] | None = None) -> Any:
    """`prev` with `patch` applied, as a new value (`prev` is not modified; unchanged parts are shared). `keys`: the
    table the patch's key numbers index."""
    if isinstance(patch, dict):
        if not isinstance(prev, dict):
            raise PatchError("an object patch needs a dict to apply to")
        out = dict(prev)
        for key, change in patch.items():
            if type(key) is int:
                if keys is None or not 0 <= key < len(keys):
                    raise PatchError(f"key number {key} is not in the key table")
                key = keys[key]
            if isinstance(change, list) and len(change) == 1 and change[0] == DELETE:
                out.pop(key, None)
            elif key in out:
                out[key] = apply(out[key], change, keys)
            else:
                out[key] = _from_nothing(change)
        return out
    if isinstance(patch, list):
        if not patch:
            raise PatchError("an empty array is not a patch")
        tag = patch[0]
        if tag == REPLACE and len(patch) == 2:
            return patch[1]
        if tag == LIST and len(patch) >= 2 and len(patch) % 2 == 0:
            return _apply_list(prev, patch, keys)
        if tag == EACH:
            if not isinstance(prev, (list, tuple)) or len(prev) != len(patch) - 1:
                raise PatchError("a patch of every item needs a list of as many items")
            return [apply(item, change, keys) for item, change in zip(prev, patch[1:], strict=True)]
        if tag == ADD:
            if not isinstance(prev, (list, tuple)) or len(prev) != len(patch) - 1:
                raise PatchError("steps need a list of as many items")
            if not all(type(item) is int and type(step) is int for item, step in zip(prev, patch[1:], strict=True)):
                raise PatchError("steps need a list of integers, and are integers")
            return [item + step for item, step in zip(prev, patch[1:], strict=True)]
        raise PatchError(f"unknown array patch {tag!r}")
    return patch


def _from_nothing(patch: Any) -> Any:
    if isinstance(patch, dict):
        raise PatchError("an object patch needs a dict to apply to")
    if isinstance(patch, list) and not (len(patch) == 2 and patch[0] == REPLACE):
        raise PatchError("a new item must be a whole value")
    return apply(None, patch)


def _apply_list(prev: Any, patch: list, keys: list[str] | None) -> list:
    if not isinstance(prev, (list, tuple)):
        raise PatchError("a list patch needs a list to apply to")
    length = patch[1]
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise PatchError("a list patch needs a length")
    out = list(prev[:length])
    old = len(out)
    out.extend([None] * (length - old))
    for at in range(2, len(patch), 2):
        i, change = patch[at], patch[at + 1]
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < length:
            raise PatchError(f"list index {i!r} out of range")
        out[i] = apply(out[i], change, keys) if i < old else _from_nothing(change)
    return out


# ---- end of the compiled part: deploy/build_ext.py compiles everything above into games/engine/_delta_c ----
# The diff runs once per match per tick over the whole snapshot; compiled (Cython, from this same source, no other
# code) it takes 6.5x less CPU (docs/benchmarks.md, "The compiled diff, typed"). Without a compiler, or when this file
# changed after the build, the Python above is used: same results, more CPU.

pure_diff = diff
pure_key_table = key_table
pure_shadow_diff, pure_keep, PureShadow = shadow_diff, keep, Shadow


def load_compiled(source: Path = Path(__file__)) -> Any:
    """The compiled copy of this file when one was built from exactly this source, else None."""
    try:
        from games.engine import _delta_c
    except ImportError:
        return None
    if getattr(_delta_c, "SOURCE_DIGEST", None) != hashlib.sha256(source.read_bytes()).hexdigest():
        logging.getLogger(__name__).warning(
            "games/engine/_delta_c was built from another delta.py: using the Python diff (rebuild it with "
            "`.venv/bin/python -m deploy.build_ext`)"
        )
        return None
    return _delta_c


_compiled = load_compiled()
COMPILED = _compiled is not None
if _compiled is not None:
    # UNCHANGED too: callers compare the diff's result with it, and the Python functions above read it at call time.
    diff, key_table, UNCHANGED, NO_KEYS = _compiled.diff, _compiled.key_table, _compiled.UNCHANGED, _compiled.NO_KEYS
    Shadow, keep, shadow_diff = _compiled.Shadow, _compiled.keep, _compiled.shadow_diff
    shadow_delta = _compiled.shadow_delta
    pack, NotPacked = _compiled.pack, _compiled.NotPacked  # (its NotPacked: the class pack() raises)
