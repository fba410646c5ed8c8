"""Any ASGI or WSGI application under the lab's servers and instrumentation.

``loadlab serve --app MODULE:ATTR`` (or ``path/to/file.py:ATTR``) names the user's app.
``spec`` parses the name into an import path, ``load`` imports it and tells ASGI from WSGI
with one-line errors, ``probe`` does that in a throwaway interpreter before anything
starts (the user's module may open pools or threads at import: never in the supervisor),
``routes`` gives the bounded ``handler`` label, ``entry`` is the factory every server
imports in its workers, and ``ready`` says when the app is ready for load.
"""

from __future__ import annotations

from loadlab.apps.spec import APP_DIR_ENV, APP_ENV, INTERFACE_ENV, INTERFACES, AppSpec, parse

__all__ = ["APP_DIR_ENV", "APP_ENV", "INTERFACES", "INTERFACE_ENV", "AppSpec", "parse"]
