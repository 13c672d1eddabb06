"""MMEngine (MMDetection3D, MMDetection): ``MLDebuggerHook``, registered in MMEngine's ``HOOKS``
registry and so visible from MMDetection3D's and MMDetection's, used from a config::

    custom_imports = dict(imports=["ml_debugger.integrations.mmengine"], allow_failed_imports=False)
    custom_hooks = [dict(type="MLDebuggerHook", model_name="pointpillars", version_name="v1")]
"""

from __future__ import annotations

try:
    import mmengine  # noqa: F401
    import torch  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"ml_debugger.integrations.mmengine needs {exc.name}, which is not installed: "
        "pip install 'ml-debugger[mmengine]'"
    ) from exc

from ml_debugger.integrations.mmengine._hook import MLDebuggerHook

__all__ = ["MLDebuggerHook"]
