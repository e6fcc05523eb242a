# deskphone: the SD-card image. See README.md, "The SD-card image".
#
#   make image ARCH=arm64 [PJPROJECT=pjproject-2.15.1.tar.gz]   the Raspberry Pi image
#   make image ARCH=amd64                                         its twin for PCs and CI
#   make clean-image                                              drop image outputs and caches
#
# Output: image/build/deskphone-$(ARCH).img. Needs root; ./bootstrap.sh test installs the tools.

ARCH ?= arm64
PJPROJECT ?=

.PHONY: image clean-image

image:
	./image/build.sh $(ARCH) $(if $(PJPROJECT),--pjproject $(PJPROJECT))

clean-image:
	rm -rf image/build
