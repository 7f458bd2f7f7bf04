"""Delta codec for snapshots: diff(prev, cur) -> patch and apply(prev, patch) -> cur over JSON-like values.

Pure and transport-free. The patch format is on the wire (docs/protocol.md, "Deltas"), so static/js/gsclient.js
implements apply() too; keep the two in step. A patch is one of:

- a scalar (number, string, bool, null): the new value;
- an object: changes to a dict, by key; each value is itself a patch, or DELETE_MARK ([2]) for a removed key;
- an array, tagged by its first element:
  [0, value]                        the new value as is (a dict or a list, or anything replacing another type),
  [1, length, i, patch, i, patch, ...]  changes to a list: cut or padded to `length`, then each listed index patched
                                    (indices at or past the old length get a whole value: a scalar or [0, value]),
  [2]                               (only inside an object) the key is gone.

Objects are always patches and arrays always tagged, so a new dict or list travels as [0, value]: rare (a joining
player), while the common case, a few numbers changing deep inside, stays small.
"""

from __future__ import annotations

from typing import Any

REPLACE, LIST, DELETE = 0, 1, 2
DELETE_MARK = [DELETE]
# A list patch that changes more than this share of the items is sent as the new list instead: shorter, and as
# cheap to apply.
LIST_REWRITE_SHARE = 0.5


class PatchError(ValueError):
    """A patch that does not fit the value it is applied to (a wrong base: the caller needs a keyframe)."""


class _Unchanged:
    __slots__ = ()


UNCHANGED = _Unchanged()


def _whole(value: Any) -> Any:
    """A value as a patch that needs no base."""
    return [REPLACE, value] if isinstance(value, (dict, list, tuple)) else value


def _same_scalar(a: Any, b: Any) -> bool:
    # 1 == 1.0 == True in Python, but they are different on the wire.
    return a == b and type(a) is type(b)


def diff(prev: Any, cur: Any) -> Any:
    """The patch turning `prev` into `cur`, or UNCHANGED when they are equal."""
    if isinstance(cur, dict):
        if not isinstance(prev, dict):
            return [REPLACE, cur]
        changes = {}
        for key, value in cur.items():
            if key in prev:
                patch = diff(prev[key], value)
                if patch is not UNCHANGED:
                    changes[key] = patch
            else:
                changes[key] = _whole(value)
        for key in prev:
            if key not in cur:
                changes[key] = DELETE_MARK
        return changes if changes else UNCHANGED
    if isinstance(cur, (list, tuple)):  # tuples travel as arrays too
        if not isinstance(prev, (list, tuple)):
            return [REPLACE, cur]
        return _diff_list(prev, cur)
    if isinstance(prev, (dict, list, tuple)) or not _same_scalar(prev, cur):
        return cur
    return UNCHANGED


def _diff_list(prev: list | tuple, cur: list | tuple) -> Any:
    ops: list[Any] = []
    common = min(len(prev), len(cur))
    for i in range(common):
        patch = diff(prev[i], cur[i])
        if patch is not UNCHANGED:
            ops.append(i)
            ops.append(patch)
    for i in range(common, len(cur)):
        ops.append(i)
        ops.append(_whole(cur[i]))
    if not ops and len(prev) == len(cur):
        return UNCHANGED
    if len(ops) // 2 > LIST_REWRITE_SHARE * len(cur):
        return [REPLACE, cur]
    return [LIST, len(cur), *ops]


def apply(prev: Any, patch: Any) -> Any:
    """`prev` with `patch` applied, as a new value (`prev` is not modified; unchanged parts are shared)."""
    if isinstance(patch, dict):
        if not isinstance(prev, dict):
            raise PatchError("an object patch needs a dict to apply to")
        out = dict(prev)
        for key, change in patch.items():
            if isinstance(change, list) and len(change) == 1 and change[0] == DELETE:
                out.pop(key, None)
            elif key in out:
                out[key] = apply(out[key], change)
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
            return _apply_list(prev, patch)
        raise PatchError(f"unknown array patch {tag!r}")
    return patch


def _from_nothing(patch: Any) -> Any:
    if isinstance(patch, dict):
        raise PatchError("an object patch needs a dict to apply to")
    if isinstance(patch, list) and not (len(patch) == 2 and patch[0] == REPLACE):
        raise PatchError("a new item must be a whole value")
    return apply(None, patch)


def _apply_list(prev: Any, patch: list) -> list:
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
        out[i] = apply(out[i], change) if i < old else _from_nothing(change)
    return out
