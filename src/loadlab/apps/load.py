"""Import the user's app and tell ASGI from WSGI, every failure in one line.

Runs in the probe (``probe.py``, before anything starts) and in every worker
(``entry.py``): the same import, the same verdict.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from typing import Any

from loadlab.apps.spec import AppSpec
from loadlab.servers import ServeError


def _where(exc: BaseException) -> str:
    """The innermost frame of a failure (``shop.py:12``): where the user looks first."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{os.path.basename(exc.filename)}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if "importlib" not in f.filename and "loadlab" not in f.filename]
    chosen = user or list(frames)
    if not chosen:
        return ""
    return f"{os.path.basename(chosen[-1].filename)}:{chosen[-1].lineno}"


def import_module(spec: AppSpec) -> Any:
    if spec.app_dir and spec.app_dir not in sys.path:
        sys.path.insert(0, spec.app_dir)
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name and spec.module.startswith(exc.name) and \
                spec.module[len(exc.name):][:1] in ("", "."):
            raise ServeError(f"cannot import {spec.module!r}: no such module under "
                             f"{spec.app_dir} (--app-dir)") from None
        raise ServeError(f"cannot import {spec.module!r}: {type(exc).__name__}: {exc}"
                         f" ({_where(exc)})") from None
    except SystemExit as exc:
        raise ServeError(f"cannot import {spec.module!r}: it called sys.exit({exc.code!r})"
                         f" ({_where(exc)})") from None
    except BaseException as exc:  # whatever the module raises at import: its own line
        if isinstance(exc, KeyboardInterrupt):
            raise
        message = str(exc).strip().splitlines()
        text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
        raise ServeError(f"cannot import {spec.module!r}: {text} ({_where(exc)})") from None


def get_attr(module: Any, spec: AppSpec) -> Any:
    obj = module
    for part in spec.attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            found = sorted(n for n, v in vars(module).items()
                           if not n.startswith("_") and interface_of(v))
            hint = f" (its applications: {', '.join(found)})" if found else ""
            raise ServeError(f"{spec.target}: module {spec.module!r} has no attribute "
                             f"{spec.attr!r}{hint}") from None
    return obj


def _positional(fn: Any) -> int | None:
    """How many positional arguments ``fn`` takes (None: any number, or unknown)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    count = 0
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            return None
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def interface_of(obj: Any) -> str:
    """"asgi", "wsgi", or "" for neither: an ASGI 3 app is a coroutine function of
    (scope, receive, send) (or an object whose ``__call__`` is one), a WSGI app a plain
    callable of (environ, start_response). Classes are neither (ASGI 2 is not served)."""
    if inspect.isclass(obj) or not callable(obj):
        return ""
    call = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else \
        getattr(obj, "__call__", None)  # noqa: B004 - the bound method's signature
    if call is None:
        return ""
    args = _positional(call)
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(obj):
        return "asgi" if args in (None, 3) else ""
    return "wsgi" if args in (None, 2) else ""


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        return f"the class {obj.__name__}"
    if inspect.ismodule(obj):
        return "a module"
    return f"a {type(obj).__name__}"


def load(spec: AppSpec) -> tuple[Any, str]:
    """The app object and its interface ("asgi" or "wsgi")."""
    obj = get_attr(import_module(spec), spec)
    found = interface_of(obj)
    if spec.interface:
        if not callable(obj) or inspect.isclass(obj):
            raise ServeError(f"{spec.target} is {_kind(obj)}, not an application "
                             f"(--interface {spec.interface} needs a callable)")
        return obj, spec.interface
    if not found:
        raise ServeError(f"{spec.target} is neither an ASGI nor a WSGI application "
                         f"({_kind(obj)}): name the app object, e.g. app = FastAPI() or "
                         "app = Flask(__name__)")
    return obj, found
