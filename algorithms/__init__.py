"""Aligners, registered by name (installed as `vaderbench.algorithms`): one module per method.

Every module of this package is imported here, so a new method is one new file: its `@ALIGNERS.register`
runs with the others'.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
