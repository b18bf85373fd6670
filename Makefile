# SPDX-License-Identifier: GPL-2.0
# qotp top-level build.
#
#   make            build qotp.ko (against KDIR) and the kms/ programs
#   make check      install missing packages, build, run every test; ends "N passed, N failed"
#   make demo       install missing packages, build, run the three-site streaming demo
#   make bench      benchmarks (ratios measured side by side in one run)
#   make install    install module (modules_install) and programs; DESTDIR, PREFIX honoured
#                   (the two halves: make install-kmod, make install-kms)
#   make dkms-install  the module's source under $(DESTDIR)/usr/src/qotp-<version> for DKMS
#   make deb        Debian packages qotp-dkms and qotp-kms into $(DEB_DIR) (build/deb/)
#
# KDIR defaults to /lib/modules/$(uname -r)/build when it exists, otherwise the newest
# installed Debian linux-headers-*-amd64.

KDIR ?= $(firstword $(wildcard /lib/modules/$(shell uname -r)/build) \
	$(lastword $(sort $(wildcard /usr/src/linux-headers-*-amd64))))
DESTDIR ?=
PREFIX ?= /usr/local
export KDIR DESTDIR PREFIX

all: kmod kms

kmod:
	$(MAKE) -C kmod KDIR=$(KDIR)

kms:
	$(MAKE) -C kms

deps:
	@scripts/deps.sh

# A checkout that cannot be built or tested where it lies (a space in its path, read-only)
# is refused in its first second, before packages are installed or kernels built.
checkout-ok:
	@scripts/checkout-ok.sh

check: checkout-ok
	@scripts/deps.sh
	@tests/run.sh

# One section of the tests: make check-e2e, check-kunit, check-unit, check-build ...
check-%: checkout-ok
	@scripts/deps.sh
	@tests/run.sh $*

demo: checkout-ok
	@scripts/deps.sh
	@scripts/demo.sh

bench: checkout-ok
	@scripts/deps.sh
	@scripts/bench.sh

fuzz: deps
	$(MAKE) -C kms fuzz

uml-kernel: deps
	scripts/uml-kernel.sh debug
	scripts/uml-kernel.sh fast

install: install-kmod install-kms

install-kmod: kmod
	$(MAKE) -C $(KDIR) M=$(CURDIR)/kmod INSTALL_MOD_PATH=$(DESTDIR) modules_install

# The programs, their man pages and the kill switch: what debian/rules installs in qotp-kms.
install-kms: kms
	$(MAKE) -C kms install
	install -d $(DESTDIR)$(PREFIX)/share/qotp
	install -m 0644 scripts/killswitch.nft $(DESTDIR)$(PREFIX)/share/qotp/

# The module's source as DKMS wants it: /usr/src/qotp-<version>/{dkms.conf,kmod/,uapi/}
# (the module includes ../uapi, so both travel together). Then: dkms add qotp/<version>.
QOTP_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' kmod/dkms.conf)
DKMS_SRC = $(DESTDIR)/usr/src/qotp-$(QOTP_VERSION)
dkms-install:
	install -d $(DKMS_SRC)/kmod/tests $(DKMS_SRC)/uapi/linux
	install -m 0644 kmod/dkms.conf $(DKMS_SRC)/dkms.conf
	install -m 0644 kmod/Kbuild kmod/Makefile kmod/*.kbuild kmod/*.c kmod/*.h $(DKMS_SRC)/kmod/
	install -m 0644 kmod/tests/*.c $(DKMS_SRC)/kmod/tests/
	install -m 0644 uapi/linux/qotp.h $(DKMS_SRC)/uapi/linux/

# qotp-dkms_<version>_all.deb and qotp-kms_<version>_<arch>.deb, built unsigned from a copy
# of the tracked files under $(DEB_DIR) (scripts/deb.sh; the checkout stays as it is).
DEB_DIR ?= build/deb
deb:
	@scripts/deb.sh $(DEB_DIR)

clean:
	-$(MAKE) -C kmod clean KDIR=$(KDIR)
	rm -rf build

.PHONY: all kmod kms deps checkout-ok check demo bench fuzz uml-kernel install install-kmod \
	install-kms dkms-install deb clean
