"""nnip_scaling: build and scale neural interatomic potentials."""

from nnip_scaling._version import __version__

__all__ = ["__version__"]
