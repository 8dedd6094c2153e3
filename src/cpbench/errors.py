"""Errors that are the user's to fix.

A :class:`UserError` carries one line that names the problem and the fix; the CLI prints it as
``cpbench: error: <message>`` and exits with status 2, without a traceback.
"""


class UserError(Exception):
    """Bad input or environment that the user can fix; the message says how."""
