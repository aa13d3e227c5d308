"""Building the project's images (host side): the offline base, the wheelhouses, the CPU images
and the GPU images of `images/`, at build time; llem's own fetch image also in the pre-flight of
a study that must download from the hub (`fetch_image`)."""
