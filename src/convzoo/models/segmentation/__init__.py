"""Segmentation families (encoder + decoder + head), one a file; imported like the classification ones."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
