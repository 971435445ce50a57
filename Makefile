# SPDX-License-Identifier: MIT
#
# sluice build.  What gets built is listed in Kbuild; this file only says how.
#
#   make            library, tools and tests
#   make run        the demo (installs missing dependencies first)
#   make check      build everything and run the tests, plain, under
#                   AddressSanitizer + UndefinedBehaviorSanitizer, and the
#                   concurrency tests under ThreadSanitizer; then the
#                   liveness and ABI tests again against a build without
#                   BPF (in O/nobpf)
#   make bench      sluice-bench against its peers
#   make install    PREFIX=/usr/local DESTDIR=
#
#   V=1             show every command
#   O=DIR           build in DIR (default: build)
#   WERROR=1        warnings are errors (CI)
#   SAN=address,undefined   build with sanitizers (make check does this in O/asan)
#   VMLINUX_BTF=FILE        kernel BTF the eBPF programs are built against
#                           (default: the running kernel's)
#   BPF=0           no eBPF program and no libbpf: liveness monitors use
#                   pidfds, and need no clang, bpftool or kernel BTF to
#                   build.  make check BPF=0 runs every test that way.

VERSION_MAJOR := 0
VERSION_MINOR := 5
VERSION_PATCH := 0
VERSION       := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

srctree := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
O       ?= build
obj     := $(abspath $(O))

# Kbuild's x-$(CONFIG_BPF) lines are built with BPF only.
BPF     ?= 1
ifeq ($(filter 0 1,$(BPF)),)
  $(error BPF=$(BPF): use BPF=1 (the default) or BPF=0)
endif
CONFIG_BPF := $(if $(filter 1,$(BPF)),y)

include $(srctree)/Kbuild

# Optional benchmark peers, found with pkg-config (make bench installs them).
HAVE_DPDK := $(shell pkg-config --exists libdpdk 2>/dev/null && echo 1)
ifeq ($(HAVE_DPDK),1)
  CFLAGS_peer_rte.o   := -DHAVE_DPDK $(shell pkg-config --cflags libdpdk)
  LDLIBS_sluice-bench += -lrte_ring -lrte_eal
endif
# Concurrency Kit's ring is all in its header: nothing to link.
HAVE_CK := $(if $(wildcard /usr/include/ck_ring.h),1)
ifeq ($(HAVE_CK),1)
  CFLAGS_peer_ck.o    := -DHAVE_CK -DCK_PKG_VERSION='"$(shell pkg-config --modversion ck 2>/dev/null)"'
endif
HAVE_ZMQ := $(shell pkg-config --exists libzmq 2>/dev/null && echo 1)
ifeq ($(HAVE_ZMQ),1)
  CFLAGS_peer_zmq.o   := -DHAVE_ZMQ $(shell pkg-config --cflags libzmq)
  LDLIBS_sluice-bench += $(shell pkg-config --libs libzmq)
endif
# iceoryx's C binding ships no .pc file, only CMake's: its headers are in a
# directory named for its version.
IOX_DIR := $(patsubst %/iceoryx_binding_c/api.h,%,$(lastword $(wildcard /usr/include/iceoryx/v*/iceoryx_binding_c/api.h)))
ifneq ($(IOX_DIR),)
  CFLAGS_peer_iox.o   := -DHAVE_IOX -I$(IOX_DIR) -DIOX_VERSION='"$(patsubst v%,%,$(notdir $(IOX_DIR)))"'
  LDLIBS_sluice-bench += -liceoryx_binding_c
endif

ifeq ($(V),1)
  Q :=
  quiet = @true
else
  Q := @
  quiet = @printf '  %-7s %s\n'
  MAKEFLAGS += --no-print-directory -s
endif

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
PCDIR      ?= $(LIBDIR)/pkgconfig

CC      ?= cc
AR      ?= ar
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wno-missing-field-initializers
ifeq ($(WERROR),1)
  WARN  += -Werror
endif
ifneq ($(SAN),)
  SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
# TSan does not model atomic_thread_fence and GCC says so on every one; the
# fences order atomics only (no plain data depends on them), so hush it.
ifneq ($(findstring thread,$(SAN)),)
  WARN += -Wno-tsan
endif

ALL_CFLAGS  := -std=gnu11 -D_GNU_SOURCE -DSLUICE_VERSION='"$(VERSION)"' -pthread -fPIC \
	       $(if $(CONFIG_BPF),-DSLUICE_HAVE_BPF) \
	       $(WARN) $(CFLAGS) $(SANFLAGS) \
	       -I$(srctree)/include -I$(srctree)/lib -MMD -MP
ALL_LDFLAGS := -pthread $(LDFLAGS) $(SANFLAGS)
LIBS        := -lnuma $(if $(CONFIG_BPF),-lbpf)
TEST_LIBS   := -lcmocka -ldl

SONAME  := libsluice.so.$(VERSION_MAJOR)

lib-objs   := $(addprefix $(obj)/lib/,$(lib-y))
lib-a      := $(obj)/libsluice.a
lib-so     := $(obj)/libsluice.so.$(VERSION)
lib-links  := $(obj)/$(SONAME) $(obj)/libsluice.so
tools-bins := $(addprefix $(obj)/tools/,$(tools-y))
tests-bins := $(addprefix $(obj)/tests/,$(tests-y))
tsan-bins  := $(addprefix $(obj)/tests/,$(tests-tsan-y))
nobpf-bins := $(addprefix $(obj)/tests/,$(tests-nobpf-y))
tests-common := $(addprefix $(obj)/tests/,$(tests-common-y))
man-pages  := $(wildcard $(srctree)/Documentation/man/*.[1-8])

# Each tool is tools/NAME.c unless Kbuild says NAME-objs := ... (paths
# under tools/).  Tools' objects are built in $(obj)/tools/objs/, since a
# tool with a directory of its own, tools/NAME/, has its program at
# $(obj)/tools/NAME.
tool-objs = $(addprefix $(obj)/tools/objs/,$(or $($(1)-objs),$(1).o))

.DEFAULT_GOAL := all
.PHONY: all lib tools tests tests-tsan tests-nobpf run check bench install \
	uninstall clean deps check-build FORCE

all: lib tools tests
lib: $(lib-a) $(lib-links)
tools: $(tools-bins)
tests: $(tests-bins)
tests-tsan: $(tsan-bins)
tests-nobpf: $(nobpf-bins)

# Objects built with and without BPF differ: changing BPF in one O
# rebuilds them.  The file changes only when the setting does.
build-config := $(obj)/.config
$(build-config): FORCE
	@mkdir -p $(@D)
	@echo 'BPF=$(BPF)' | cmp -s - $@ || echo 'BPF=$(BPF)' > $@

$(obj)/%.o: $(srctree)/%.c $(build-config)
	$(quiet) CC $(patsubst $(obj)/%,%,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(CFLAGS_$(@F)) -c $< -o $@

# The tools' objects (tool-objs), compiled as above.
$(obj)/tools/objs/%.o: $(srctree)/tools/%.c $(build-config)
	$(quiet) CC $(patsubst $(obj)/%,%,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) $(CFLAGS_$(@F)) -c $< -o $@

$(lib-a): $(lib-objs)
	$(quiet) AR $(notdir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(lib-so): $(lib-objs) $(srctree)/lib/libsluice.map
	$(quiet) LD $(notdir $@)
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,$(SONAME) \
		-Wl,--version-script=$(srctree)/lib/libsluice.map \
		-Wl,--no-undefined -o $@ $(lib-objs) $(LIBS)

$(lib-links): $(lib-so)
	$(Q)ln -sf $(notdir $<) $@

# ---------------------------------------------------------------- eBPF
#
# Each bpf-y NAME is bpf/NAME.bpf.c, compiled once (CO-RE) against a
# vmlinux.h dumped from the kernel's BTF, and turned into a skeleton
# header, $(obj)/bpf/NAME.skel.h, that embeds the object: lib/NAME_bpf.c
# includes it, and nothing is loaded from disk at run time.  The eBPF
# object never sees CFLAGS or sanitizer flags; the skeleton is plain C
# built like the rest of lib/.  With BPF=0, bpf-y is empty and none of
# this runs.

BPF_CLANG   ?= clang
BPFTOOL     ?= bpftool
BPF_CFLAGS  ?= -g -O2
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
# The kernel's name for the target architecture, for bpf_tracing.h.
bpf-arch-x86_64  := x86
bpf-arch-i386    := x86
bpf-arch-i686    := x86
bpf-arch-aarch64 := arm64
bpf-arch-arm     := arm
bpf-arch-powerpc64le := powerpc
bpf-arch-riscv64 := riscv
bpf-arch-s390x   := s390
bpf-arch-loongarch64 := loongarch
cc-arch     := $(firstword $(subst -, ,$(shell $(CC) -dumpmachine 2>/dev/null || uname -m)))
BPF_ARCH    ?= $(or $(bpf-arch-$(cc-arch)),$(cc-arch))
BPF_WARN    := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
ifeq ($(WERROR),1)
  BPF_WARN  += -Werror
endif

$(obj)/bpf/vmlinux.h: $(VMLINUX_BTF)
	$(quiet) GEN $(patsubst $(obj)/%,%,$@)
	@mkdir -p $(@D)
	$(Q)$(BPFTOOL) btf dump file $< format c > $@.tmp && mv $@.tmp $@

# clang's object still holds DWARF; "gen object" keeps only what libbpf
# needs (BTF and relocations), which keeps the skeleton small.
$(obj)/bpf/%.bpf.o: $(srctree)/bpf/%.bpf.c $(obj)/bpf/vmlinux.h
	$(quiet) BPF $(patsubst $(obj)/%,%,$@)
	$(Q)$(BPF_CLANG) $(BPF_CFLAGS) -target bpf -D__TARGET_ARCH_$(BPF_ARCH) \
		$(BPF_WARN) -I$(obj)/bpf -I$(srctree)/lib \
		-MMD -MP -MF $(@:.o=.d) -MT $@ -c $< -o $(@:.o=.tmp.o)
	$(Q)$(BPFTOOL) gen object $@ $(@:.o=.tmp.o) && rm -f $(@:.o=.tmp.o)

$(obj)/bpf/%.skel.h: $(obj)/bpf/%.bpf.o
	$(quiet) GEN $(patsubst $(obj)/%,%,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@.tmp && mv $@.tmp $@

# lib/NAME_bpf.c includes bpf/NAME.skel.h: the skeleton must exist before
# the first compile; after that -MMD records it as a dependency like any
# header.
$(foreach b,$(bpf-y),$(eval $(obj)/lib/$(b)_bpf.o: | $(obj)/bpf/$(b).skel.h))
$(foreach b,$(bpf-y),$(eval CFLAGS_$(b)_bpf.o += -I$(obj)/bpf))

# Written at install time: it records where things were installed.  numa
# and libbpf have .pc files of their own, which bring their flags (and
# libbpf's libelf and zlib) to a static link.
pc-requires := numa $(if $(CONFIG_BPF),libbpf)
define write-pc
	printf '%s\n' 'prefix=$(PREFIX)' \
		'libdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))' \
		'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' \
		'' 'Name: sluice' \
		'Description: kernel-bypass inter-process communication over shared memory' \
		'Version: $(VERSION)' 'Requires.private: $(strip $(pc-requires))' \
		'Libs: -L$${libdir} -lsluice' 'Libs.private: -pthread' \
		'Cflags: -I$${includedir}' > $(1)
endef

# Tools and tests link the static library: they may use lib/ internals.
.SECONDEXPANSION:
$(tools-bins): $(obj)/tools/%: $$(call tool-objs,%) $(lib-a)
	$(quiet) LD tools/$*
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(LDLIBS_$*) -lm

$(sort $(tests-bins) $(tsan-bins) $(nobpf-bins)): $(obj)/tests/%: $(obj)/tests/%.o $(tests-common) $(lib-a)
	$(quiet) LD tests/$*
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(TEST_LIBS)

# ---------------------------------------------------------------- running

# Installs missing packages only when something is missing (quick check).
deps:
	$(Q)$(srctree)/scripts/deps.sh $(if $(CONFIG_BPF),,--no-bpf)

run: deps
	$(Q)$(MAKE) -f $(srctree)/Makefile O=$(O) lib tools
	$(Q)$(obj)/tools/sluicectl setup --hugepages 64 --quiet
	$(Q)$(obj)/tools/sluice-demo

bench: deps
	$(Q)$(srctree)/scripts/deps.sh --bench $(if $(CONFIG_BPF),,--no-bpf)
	$(Q)$(MAKE) -f $(srctree)/Makefile O=$(O) lib tools
	$(Q)$(obj)/tools/sluice-bench

# With BPF (the default) the tests of tests-nobpf-y also run against a
# build without it; make check BPF=0 runs everything without it, and the
# sub-makes inherit BPF=0 from the command line.  The test programs of all
# the builds run at once, SLUICE_TEST_JOBS=N of them (default: one per
# CPU), but those of tests-alone-y run with none beside them.
empty :=
space := $(empty) $(empty)
check-nobpf := $(if $(CONFIG_BPF),nobpf:$(obj)/nobpf:$(subst $(space),:,$(strip $(tests-nobpf-y))))
check: deps
	$(Q)$(MAKE) -f $(srctree)/Makefile O=$(O) check-build
	$(Q)$(MAKE) -f $(srctree)/Makefile O=$(O)/asan SAN=address,undefined lib tests
	$(Q)$(MAKE) -f $(srctree)/Makefile O=$(O)/tsan SAN=thread tests-tsan
ifeq ($(CONFIG_BPF),y)
	$(Q)$(MAKE) -f $(srctree)/Makefile O=$(O)/nobpf BPF=0 lib tests-nobpf
endif
	$(Q)SLUICE_SRCTREE=$(srctree) $(srctree)/scripts/run-tests.sh \
		$(addprefix -a ,$(tests-alone-y)) \
		plain:$(obj) asan:$(obj)/asan tsan:$(obj)/tsan $(check-nobpf)

check-build: all $(lib-links)

# ---------------------------------------------------------------- install

install: lib tools
	$(quiet) INSTALL $(DESTDIR)$(PREFIX)
	$(Q)install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/sluice \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(PCDIR)
	$(Q)install -m 644 $(lib-a) $(DESTDIR)$(LIBDIR)
	$(Q)install -m 755 $(lib-so) $(DESTDIR)$(LIBDIR)
	$(Q)ln -sf $(notdir $(lib-so)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsluice.so
	$(Q)install -m 644 $(srctree)/include/sluice.h $(DESTDIR)$(INCLUDEDIR)
	$(Q)install -m 644 $(srctree)/include/sluice/*.h $(DESTDIR)$(INCLUDEDIR)/sluice
	$(Q)$(call write-pc,$(DESTDIR)$(PCDIR)/sluice.pc)
	$(Q)install -m 755 $(tools-bins) $(DESTDIR)$(BINDIR)
	$(Q)for m in $(man-pages); do s=$${m##*.}; \
		install -d $(DESTDIR)$(MANDIR)/man$$s && \
		sed 's/"sluice" "sluice Manual"/"sluice $(VERSION)" "sluice Manual"/' $$m \
			> $(DESTDIR)$(MANDIR)/man$$s/$${m##*/} && \
		chmod 644 $(DESTDIR)$(MANDIR)/man$$s/$${m##*/} || exit 1; done

uninstall:
	$(Q)rm -f $(DESTDIR)$(LIBDIR)/libsluice.* $(DESTDIR)$(PCDIR)/sluice.pc \
		$(DESTDIR)$(INCLUDEDIR)/sluice.h \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(tools-y))
	$(Q)rm -rf $(DESTDIR)$(INCLUDEDIR)/sluice
	$(Q)for m in $(notdir $(man-pages)); do \
		rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; done

clean:
	$(quiet) CLEAN $(O)
	$(Q)rm -rf $(obj)

-include $(wildcard $(obj)/lib/*.d $(obj)/tools/objs/*.d $(obj)/tools/objs/*/*.d \
	$(obj)/tests/*.d $(obj)/bpf/*.d)
