"""Framework callbacks, one module per ecosystem, each a thin adapter over the core engine.

Importing this package imports no framework: ``ml_debugger.integrations.lightning``,
``ml_debugger.integrations.keras``, ``ml_debugger.integrations.transformers``, ``ml_debugger.integrations.ultralytics`` and
``ml_debugger.integrations.mmengine`` import theirs.
"""
