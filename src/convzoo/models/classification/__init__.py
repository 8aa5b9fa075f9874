"""Classification families, one a file. Importing a family module registers its networks, so every module
in this package is imported here: a new family file needs no edit elsewhere."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
