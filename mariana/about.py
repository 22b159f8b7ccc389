"""Mariana's version, in a module of its own so any module can name it without importing the package's top.

Example:
    >>> from mariana.about import __version__
    >>> __version__.count(".")
    2
"""

__version__ = "0.1.0"
