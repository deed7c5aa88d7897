"""Step actions a lab file may name, grouped by what they touch: the workload and time
(control), processes (process), the network (network), data files (files), who is master
(roles) and cluster slots (slots). Each module registers its actions with the capabilities and
modes they need; they are found by listing this folder, so a new fault is one new module."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):    # _name: a draft, not yet a plug-in
        importlib.import_module(f"{__name__}.{_module.name}")
