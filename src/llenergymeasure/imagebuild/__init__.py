"""Building the project's images (host side, at build time, not while a study runs): the
offline base, the wheelhouses, the CPU images and the GPU images of `images/`."""
