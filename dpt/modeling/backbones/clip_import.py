"""Import OpenAI's ``clip`` package even where setuptools no longer ships ``pkg_resources``.

Why: clip-anytorch does ``from pkg_resources import packaging`` at import time only to compare the torch
version; setuptools >= 82 removed ``pkg_resources``. We place a stub exposing the real ``packaging``
package in ``sys.modules`` for the duration of the import only, so no other package sees a fake
``pkg_resources``. Always import clip as ``from dpt.modeling.backbones.clip_import import clip``.
"""
import importlib
import sys
import types


def _import_clip() -> types.ModuleType:
    """Import ``clip``, bridging a missing ``pkg_resources`` with a scoped stub."""
    try:
        return importlib.import_module("clip")
    except ModuleNotFoundError as err:
        if err.name != "pkg_resources":
            raise
    import packaging
    import packaging.version

    stub = types.ModuleType("pkg_resources")
    stub.packaging = packaging
    sys.modules["pkg_resources"] = stub
    for name in [m for m in sys.modules if m == "clip" or m.startswith("clip.")]:
        del sys.modules[name]
    try:
        return importlib.import_module("clip")
    finally:
        if sys.modules.get("pkg_resources") is stub:
            del sys.modules["pkg_resources"]


clip = _import_clip()

__all__ = ["clip"]
