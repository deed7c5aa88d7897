"""Workloads: what runs against a lab while faults happen. Each module registers one; they are
found by listing this folder, so a new workload is one new module."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):    # _name: a draft, not yet a plug-in
        importlib.import_module(f"{__name__}.{_module.name}")
