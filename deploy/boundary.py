"""How a boundary with another project says what it relies on, and checks it: deploy/boundary_daphne.py and
deploy/boundary_uvicorn.py declare pieces of Twisted, autobahn, daphne, uvicorn and websockets that are not their
public API, and refuse to start when an installed version no longer has one of them (docs/architecture.md,
"Boundaries with other projects")."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import logging
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Literal

logger = logging.getLogger(__name__)


class BoundaryError(RuntimeError):
    """An installed package no longer has something a boundary relies on. The message names each missing piece."""


def installed_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def resolve(target: str) -> object:
    """`package.module:Class.attr` (or just a module) to the object; LookupError saying which part is missing."""
    module_name, _, path = target.partition(":")
    try:
        found = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"module {module_name} cannot be imported ({exc})") from None
    for part in path.split(".") if path else ():
        if not hasattr(found, part):
            raise LookupError(f"{target} is missing")
        found = getattr(found, part)
    return found


@cache
def _assigned_on_self(cls: type) -> frozenset[str]:
    """Names a class's own methods assign as `self.<name>` (instance attributes, which `hasattr` on the class cannot
    see). A class without Python source (a C extension) assigns none that this can find."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return frozenset()
    return frozenset(
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name) and node.value.id == "self"
    )


def has_attribute(cls: type, name: str) -> bool:
    """Whether instances of `cls` have `name`: on the class (or a base), or assigned by one of their methods."""
    return hasattr(cls, name) or any(name in _assigned_on_self(klass) for klass in cls.__mro__ if klass is not object)


@dataclass(frozen=True)
class Piece:
    """One thing a boundary relies on: `name` of `owner` (a class or module, "module:Qualname"), from `package`.

    kind "attribute": instances (or the module) have it; "method": a callable whose parameters are exactly `params`
    (an upgrade that changes the signature of a method we override or call must be reviewed); "subclass": owner
    still extends `name` (a "module:Qualname"); "same": the owner module's global `name` is the object `params[0]`
    names ("module:Qualname")."""

    package: str
    owner: str
    name: str
    why: str
    kind: Literal["attribute", "method", "subclass", "same"] = "attribute"
    params: tuple[str, ...] = ()

    def label(self) -> str:
        return _dotted(self.owner) if self.kind == "subclass" else f"{_dotted(self.owner)}.{self.name}"

    def problem(self) -> str | None:
        """None when the installed package has this piece as relied on; else what is wrong, in a few words."""
        try:
            return _PROBLEM_OF_KIND[self.kind](self, resolve(self.owner))
        except LookupError as exc:
            return str(exc)


def _dotted(target: str) -> str:
    return target.replace(":", ".")


def _attribute_problem(piece: Piece, owner: object) -> str | None:
    present = has_attribute(owner, piece.name) if isinstance(owner, type) else hasattr(owner, piece.name)
    return None if present else f"{piece.label()} is missing"


def _method_problem(piece: Piece, owner: object) -> str | None:
    if (missing := _attribute_problem(piece, owner)) is not None:
        return missing
    member = getattr(owner, piece.name)
    if not callable(member):
        return f"{piece.label()} is no longer callable"
    try:
        params = tuple(inspect.signature(member).parameters)
    except (TypeError, ValueError):
        return f"{piece.label()} has no signature to check"
    return None if params == piece.params else f"{piece.label()} takes ({', '.join(params)}), not ({', '.join(piece.params)})"


def _subclass_problem(piece: Piece, owner: object) -> str | None:
    base = resolve(piece.name)
    extends = isinstance(owner, type) and isinstance(base, type) and issubclass(owner, base)
    return None if extends else f"{piece.label()} no longer extends {_dotted(piece.name)}"


def _same_problem(piece: Piece, owner: object) -> str | None:
    same = getattr(owner, piece.name, None) is resolve(piece.params[0])
    return None if same else f"{piece.label()} is no longer {_dotted(piece.params[0])}"


_PROBLEM_OF_KIND = {"attribute": _attribute_problem, "method": _method_problem, "subclass": _subclass_problem,
                    "same": _same_problem}


def problems(pieces: Iterable[Piece], verified: dict[str, str]) -> list[str]:
    """One line per piece an installed package lacks, naming the package, its version and the one verified."""
    found = []
    for piece in pieces:
        problem = piece.problem()
        if problem is not None:
            version = installed_version(piece.package)
            seen = f"verified with {verified[piece.package]}" if piece.package in verified else "not verified"
            found.append(f"{piece.package} {version} ({seen}): {problem} — relied on for {piece.why}")
    return found


def check(boundary: str, pieces: Iterable[Piece], verified: dict[str, str], *, otherwise: str) -> None:
    """Raise BoundaryError listing every missing piece; log a warning when every piece is there but a package's
    version is not the one the boundary was verified with. `otherwise`: how to serve without the boundary."""
    missing = problems(pieces, verified)
    if missing:
        raise BoundaryError(
            f"{boundary}: the installed packages no longer have what it relies on, so the server will not start:\n"
            + "".join(f"  - {line}\n" for line in missing)
            + f"Review {boundary} against the new versions and run tests/deploy/test_boundaries.py; {otherwise}"
        )
    for package, version in verified.items():
        if installed_version(package) != version:
            logger.warning("%s: %s %s is installed, verified with %s (every piece it relies on is there)",
                           boundary, package, installed_version(package), version)
