"""The one base class of every error that means "tell the user in one line".

``loadlab.cli.main`` catches ``UserError`` once: it prints ``loadlab COMMAND: error: MESSAGE``
and exits with the error's ``exit_code`` (2, argparse's convention for bad input, unless a
subclass says otherwise). A traceback means a defect in the lab, not in the input.
"""

from __future__ import annotations


class UserError(Exception):
    """A reason the command cannot go on that the user can act on, in one line."""

    exit_code: int = 2
