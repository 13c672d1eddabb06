"""ml_debugger: find where and why ML models fail.

Importing this package imports no training framework; ``ml_debugger.training`` and
``ml_debugger.integrations.*`` import theirs when used.
"""

from ml_debugger._version import __version__

__all__ = ["__version__"]
