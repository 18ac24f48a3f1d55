"""Report sections, one module per step kind; each registers its renderer with
`@register_section(kind)`. Every module in this package is imported here, so adding a section
means adding a module, never editing a list."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
