"""Adapter kinds by name: built-ins by module path (imported on first use) and third-party entry points."""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import EntryPoint, entry_points

from adapters.base import Adapter
from adapters.config import AdapterConfig
from adapters.errors import AdapterError

ENTRY_POINT_GROUP = "hotline_gateway.adapters"

# Built-ins are named by "module:Class" and imported only when a configuration uses them, so a kind
# whose module is broken or still being written breaks only the adapters that use it.
BUILTIN_KINDS: dict[str, str] = {
    "rest": "adapters.rest:RestAdapter",
    "soap": "adapters.soap:SoapAdapter",
}


class AdapterKindError(AdapterError, LookupError):
    """A kind that is unknown, or whose class cannot be loaded; says which and why."""


def _load_target(target: str, origin: str) -> type[Adapter]:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # an import error of any kind must name the kind, not crash the loader
        raise AdapterKindError(f"{origin}: cannot import {module_name}: {type(err).__name__}: {err}") from err
    found = getattr(module, attribute, None) if attribute else None
    if found is None:
        raise AdapterKindError(f"{origin}: {module_name} has no attribute {attribute!r}")
    return _checked(found, origin)


def _checked(found: object, origin: str) -> type[Adapter]:
    if not (isinstance(found, type) and issubclass(found, Adapter)):
        raise AdapterKindError(f"{origin}: {found!r} is not a subclass of adapters.base.Adapter")
    return found


class AdapterRegistry:
    """Adapter kinds by name. Precedence: registered in code, then built-in, then entry point."""

    def __init__(self, builtins: dict[str, str] | None = None, group: str = ENTRY_POINT_GROUP) -> None:
        self._builtins = dict(BUILTIN_KINDS if builtins is None else builtins)
        self._group = group
        self._loaded: dict[str, type[Adapter]] = {}
        self._lock = threading.Lock()

    def register(self, kind: type[Adapter], *, name: str | None = None, replace: bool = False) -> None:
        """Make a kind available under `name` (default: its `kind` attribute)."""
        key = name or kind.kind
        _checked(kind, f"adapter kind {key!r}")
        with self._lock:
            if key in self._loaded and not replace and self._loaded[key] is not kind:
                raise AdapterKindError(f"adapter kind {key!r} is already registered")
            self._loaded[key] = kind

    def _entry_points(self, name: str | None = None) -> list[EntryPoint]:
        found = entry_points(group=self._group)
        return [ep for ep in found if name is None or ep.name == name]

    def get(self, name: str) -> type[Adapter]:
        """The class of kind `name`, loading it on first use; AdapterKindError naming the known kinds."""
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
        if name in self._builtins:
            kind = _load_target(self._builtins[name], f"built-in adapter kind {name!r}")
        else:
            candidates = self._entry_points(name)
            if not candidates:
                raise AdapterKindError(f"unknown adapter kind {name!r}; known kinds: {', '.join(self.names())} "
                                       f"(third-party kinds are entry points in group {self._group!r})")
            values = sorted({ep.value for ep in candidates})
            if len(values) > 1:
                raise AdapterKindError(f"adapter kind {name!r} is provided by several entry points: "
                                       f"{', '.join(values)}; uninstall all but one")
            origin = f"adapter kind {name!r} (entry point {values[0]})"
            try:
                loaded = candidates[0].load()
            except Exception as err:  # a broken plug-in names itself instead of crashing the gateway
                raise AdapterKindError(f"{origin}: cannot load: {type(err).__name__}: {err}") from err
            kind = _checked(loaded, origin)
        if getattr(kind, "kind", None) != name:
            raise AdapterKindError(f"adapter kind {name!r}: class {kind.__qualname__} declares kind "
                                   f"{getattr(kind, 'kind', None)!r}")
        with self._lock:
            self._loaded.setdefault(name, kind)
            return self._loaded[name]

    def names(self) -> list[str]:
        """Every kind name known, without importing any of them."""
        with self._lock:
            loaded = set(self._loaded)
        return sorted(loaded | set(self._builtins) | {ep.name for ep in self._entry_points()})

    def build(self, config: AdapterConfig) -> Adapter:
        """The adapter for one configuration."""
        return self.get(config.kind)(config)


default_registry = AdapterRegistry()


def build_adapters(configs: dict[str, AdapterConfig], *, include_disabled: bool = False) -> dict[str, Adapter]:
    """Adapters for the enabled configurations (all with `include_disabled`), by id."""
    return {adapter_id: default_registry.build(config) for adapter_id, config in configs.items()
            if include_disabled or config.enabled}
