"""The boundaries with daphne/Twisted/autobahn (deploy/boundary_daphne.py) and uvicorn/websockets
(deploy/boundary_uvicorn.py): the installed versions have every piece they declare; a piece an upgrade removed,
renamed or changed fails the check with the package, its version and the piece; a server whose boundary fails refuses
to start (one real process per server); and the declarations are complete: every name of another project that the
launchers override or use is declared, and no private name of another project is touched outside the boundaries."""

from __future__ import annotations

import ast
import inspect
import logging
import os
import re
import subprocess
import sys
import textwrap

import daphne.http_protocol
import daphne.ws_protocol
import pytest
import twisted.internet.tcp
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from deploy import boundary_daphne, boundary_uvicorn, daphne_http, daphne_ws, uvicorn_ws
from deploy.boundary import BoundaryError, Piece, has_attribute, installed_version, problems
from tests.procs import ROOT, free_port

BOUNDARIES = [boundary_daphne, boundary_uvicorn]
# Each launcher module and the boundary that declares what it relies on.
ADAPTERS = [(daphne_ws, boundary_daphne), (daphne_http, boundary_daphne), (uvicorn_ws, boundary_uvicorn)]
FOREIGN = {"daphne", "twisted", "autobahn", "uvicorn", "websockets"}


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=lambda b: b.__name__)
def test_the_installed_versions_have_every_piece_the_boundary_relies_on(boundary):
    assert problems(boundary.PIECES, boundary.VERIFIED) == []
    boundary.check()


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=lambda b: b.__name__)
def test_each_boundary_was_verified_with_the_versions_requirements_pins(boundary):
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    pins = {name.lower(): version for name, version in pins.items()}
    assert {package: pins.get(package) for package in boundary.VERIFIED} == boundary.VERIFIED
    assert {package: installed_version(package) for package in boundary.VERIFIED} == boundary.VERIFIED


# --- an upgrade that moved something: the check names it -----------------------------------------------------------


def refusal(check) -> str:
    with pytest.raises(BoundaryError) as refused:
        check()
    return str(refused.value)


def test_a_removed_method_is_named_with_its_package_and_version(monkeypatch):
    monkeypatch.delattr(daphne.ws_protocol.WebSocketProtocol, "check_timeouts")
    message = refusal(boundary_daphne.check)
    assert f"daphne {installed_version('daphne')} (verified with 4.2.3): " in message
    assert "daphne.ws_protocol.WebSocketProtocol.check_timeouts is missing" in message
    assert "keepalive and timeout" in message  # why it is relied on
    assert "plain daphne" in message  # what to run meanwhile


def test_a_renamed_private_attribute_is_named(monkeypatch):
    monkeypatch.setattr(twisted.internet.tcp._SocketCloser, "_should_shutdown", True, raising=False)
    monkeypatch.delattr(twisted.internet.tcp._SocketCloser, "_shouldShutdown")
    message = refusal(boundary_daphne.check)
    assert "twisted.internet.tcp.Server._shouldShutdown is missing" in message
    assert message.count("\n  - ") == 1, message  # only what moved


def test_a_changed_signature_is_named(monkeypatch):
    monkeypatch.setattr(WebSocketsSansIOProtocol, "connection_lost", lambda self, exc, code: None)
    message = refusal(boundary_uvicorn.check)
    assert f"uvicorn {installed_version('uvicorn')} (verified with 0.54.0): " in message
    assert ("uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol.connection_lost takes "
            "(self, exc, code), not (self, exc)") in message
    assert "--ws websockets-sansio" in message


def test_a_changed_class_hierarchy_is_named(monkeypatch):
    monkeypatch.setattr(daphne.http_protocol, "WebRequest", type("WebRequest", (), {}))
    assert "daphne.http_protocol.WebRequest no longer extends twisted.web.http.Request" in refusal(boundary_daphne.check)


def test_a_module_that_is_gone_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn.protocols.websockets.websockets_sansio_impl", None)
    message = refusal(boundary_uvicorn.check)
    assert "module uvicorn.protocols.websockets.websockets_sansio_impl cannot be imported" in message


def test_an_instance_attribute_is_found_in_the_source_and_missed_once_renamed(tmp_path, monkeypatch):
    # Instance attributes (Twisted's _tempDataBuffer, websockets' buffer) exist only once __init__ has run: the check
    # reads the classes' source for `self.<name> = ...`.
    (tmp_path / "reader_v1.py").write_text(textwrap.dedent("""
        class Reader:
            def __init__(self):
                self.buffer = bytearray()
    """))
    (tmp_path / "reader_v2.py").write_text(textwrap.dedent("""
        class Base:
            def __init__(self):
                self._buffer = bytearray()

        class Reader(Base):
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    from reader_v1 import Reader

    assert not hasattr(Reader, "buffer") and has_attribute(Reader, "buffer")
    assert Piece("websockets", "reader_v1:Reader", "buffer", "why").problem() is None
    assert Piece("websockets", "reader_v2:Reader", "buffer", "why").problem() == "reader_v2.Reader.buffer is missing"
    assert Piece("websockets", "reader_v2:Reader", "_buffer", "why").problem() is None  # found on a base class


def test_a_version_other_than_the_verified_one_is_logged_when_nothing_moved(monkeypatch, caplog):
    monkeypatch.setitem(boundary_uvicorn.VERIFIED, "uvicorn", "0.1.0")
    with caplog.at_level(logging.WARNING, logger="deploy.boundary"):
        boundary_uvicorn.check()
    assert f"uvicorn {installed_version('uvicorn')} is installed, verified with 0.1.0" in caplog.text


# --- a server whose boundary fails refuses to start (real processes) ------------------------------------------------


def start_with_site_customization(tmp_path, code: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run a server with `code` run at interpreter start-up (sitecustomize), as an upgraded package would be."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DATA_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.multiprocess
def test_daphne_refuses_to_start_when_twisted_moved_a_private_attribute(tmp_path):
    result = start_with_site_customization(tmp_path, """
        import twisted.internet.tcp as tcp
        tcp._SocketCloser._should_shutdown = tcp._SocketCloser._shouldShutdown
        del tcp._SocketCloser._shouldShutdown
    """, ["-m", "deploy.daphne_ws", "-b", "127.0.0.1", "-p", str(free_port()), "gameserver.asgi:application"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"twisted {installed_version('twisted')} (verified with 26.10.0): " in result.stderr
    assert "twisted.internet.tcp.Server._shouldShutdown is missing" in result.stderr
    assert "Traceback" not in result.stderr and "Starting server" not in result.stderr + result.stdout


@pytest.mark.multiprocess
def test_uvicorn_refuses_to_load_the_protocol_when_uvicorn_renamed_a_method(tmp_path):
    result = start_with_site_customization(tmp_path, """
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol as Protocol
        Protocol._stop_keepalive = Protocol.stop_keepalive
        del Protocol.stop_keepalive
    """, ["-m", "uvicorn", "--ws", "deploy.uvicorn_ws:WebSocketProtocol", "--lifespan", "off", "--host", "127.0.0.1",
          "--port", str(free_port()), "gameserver.asgi:application"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BoundaryError: deploy/boundary_uvicorn.py" in result.stderr
    assert "WebSocketsSansIOProtocol.stop_keepalive is missing" in result.stderr
    assert "Uvicorn running" not in result.stderr + result.stdout


# --- the declarations are complete -----------------------------------------------------------------------------------


def names_used(cls: type) -> set[str]:
    """What a class of ours defines, assigns or reads on `self`, and calls on super()."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    names = {node.name for node in body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    names |= {target.id for node in body if isinstance(node, ast.Assign | ast.AnnAssign)
              for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
              if isinstance(target, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            names.add(node.attr)
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "super"):
            names.add(node.attr)
    return names


def foreign_bases(cls: type) -> list[type]:
    return [klass for klass in cls.__mro__ if klass.__module__.split(".")[0] in FOREIGN]


@pytest.mark.parametrize(("module", "boundary"), ADAPTERS, ids=lambda m: m.__name__)
def test_every_name_of_another_project_a_launcher_uses_is_declared_in_its_boundary(module, boundary):
    declared = {piece.name for piece in boundary.PIECES if piece.kind in ("attribute", "method")}
    undeclared = set()
    for node in ast.parse(inspect.getsource(module)).body:
        if not isinstance(node, ast.ClassDef) or not (bases := foreign_bases(cls := getattr(module, node.name))):
            continue
        for name in names_used(cls):
            if any(has_attribute(base, name) for base in bases) and name not in declared:
                undeclared.add(f"{cls.__name__}.{name}")
    assert not undeclared, f"{module.__name__} relies on names {boundary.__name__} does not declare: {sorted(undeclared)}"


@pytest.mark.parametrize(("module", "boundary"), ADAPTERS, ids=lambda m: m.__name__)
def test_no_private_name_of_another_project_is_touched_outside_the_boundary(module, boundary):
    tree = ast.parse(inspect.getsource(module))
    own = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    own |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name) and node.value.id == "self"}
    own |= {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(target, ast.Name)}
    private = re.compile(r"^_[^_]")
    touched = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and private.match(node.attr)
               and node.attr not in own}
    touched |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").split(".")[0] in FOREIGN for alias in node.names if private.match(alias.name)}
    assert not touched, f"{module.__name__} touches private names of another project: {sorted(touched)}"
