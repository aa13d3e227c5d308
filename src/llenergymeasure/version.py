"""llem's version: the image tags, the manifest and every result record it. A module of its own
so that no module imports the package facade back."""

__version__ = "0.1.0"
