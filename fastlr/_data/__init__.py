"""The modules behind :mod:`fastlr.datasets` (generators, file loaders, scaling); import from there."""
