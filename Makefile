# ccvm — one GNU Makefile.  `make` builds build/ccvm (with the static guest
# init embedded), `make check` runs every test, `make asan` the unit tests
# (host and guest code) under ASan+UBSan, `make lint` the static checks,
# `make fuzz` the fuzzers, `make fuzz-replay` their corpora once.

VERSION := 0.1.0
PREFIX ?= /usr/local
BUILD ?= build

CC ?= cc
PKG_CONFIG ?= pkg-config

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -Wmissing-prototypes
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection
# Each side sees its own headers and the shared contract, never the other
# side's: the include path is the trust boundary (docs/architecture.md).
BASE_CFLAGS := -std=gnu11 -O2 -g $(WARN) $(HARDEN) -DCCVM_VERSION='"$(VERSION)"'
HOST_INC := -Isrc/host -Isrc/common
GUEST_INC := -Isrc/guest -Isrc/common
SAN_CFLAGS ?=
CFLAGS_ALL := $(BASE_CFLAGS) $(SAN_CFLAGS) $(CFLAGS)

JANSSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null)
JANSSON_LIBS := $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)
NETTLE_CFLAGS := $(shell $(PKG_CONFIG) --cflags nettle 2>/dev/null)
NETTLE_LIBS := $(shell $(PKG_CONFIG) --libs nettle 2>/dev/null || echo -lnettle)
CURL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcurl openssl 2>/dev/null)
CURL_LIBS := $(shell $(PKG_CONFIG) --libs libcurl openssl 2>/dev/null || echo -lcurl -lssl -lcrypto)
PSL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libpsl 2>/dev/null)
PSL_LIBS := $(shell $(PKG_CONFIG) --libs libpsl 2>/dev/null || echo -lpsl)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

HOST_LDFLAGS := -pie -Wl,-z,relro,-z,now $(SAN_CFLAGS) $(LDFLAGS)
HOST_LIBS := $(JANSSON_LIBS) $(NETTLE_LIBS) $(CURL_LIBS) $(PSL_LIBS)

COMMON_SRCS := $(sort $(wildcard src/common/*.c))
HOST_SRCS := $(sort $(filter-out src/host/main.c,$(wildcard src/host/*.c \
	src/host/*/*.c)))
GUEST_SRCS := $(sort $(filter-out src/guest/main.c,$(wildcard src/guest/*.c \
	src/guest/*/*.c)))
HOST_HDRS := $(wildcard src/host/*.h src/host/*/*.h src/common/*.h)
GUEST_HDRS := $(wildcard src/guest/*.h src/guest/*/*.h src/common/*.h)
ALL_SRC_FILES := $(wildcard src/*/*.[ch] src/*/*/*.[ch])

COMMON_OBJS := $(COMMON_SRCS:src/%.c=$(BUILD)/obj/%.o)
HOST_OBJS := $(HOST_SRCS:src/%.c=$(BUILD)/obj/%.o)
# The guest init is static and built without sanitizers, separately.
GUEST_CFLAGS := $(BASE_CFLAGS) $(GUEST_INC) -fPIE
GUEST_OBJS := $(GUEST_SRCS:src/%.c=$(BUILD)/gobj/%.o) \
	$(COMMON_SRCS:src/%.c=$(BUILD)/gobj/%.o)
# With sanitizers (make asan), the guest unit tests get a sanitized copy of
# the same objects; ccvm-init keeps the plain ones.
GUEST_SAN_OBJS := $(GUEST_OBJS:$(BUILD)/gobj/%=$(BUILD)/sgobj/%)
GUEST_TEST_LIB := $(if $(SAN_CFLAGS),$(BUILD)/libccvm-guest-san.a,$(BUILD)/libccvm-guest.a)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_HOST_SRCS := $(filter-out tests/unit/test_guest_%,$(UNIT_SRCS))
UNIT_GUEST_SRCS := $(filter tests/unit/test_guest_%,$(UNIT_SRCS))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)

.PHONY: all check unit asan lint fuzz fuzz-replay bench clean deps install \
	uninstall format

all: $(BUILD)/ccvm $(BUILD)/ccvm-init

$(BUILD)/obj/host/%.o: src/host/%.c $(HOST_HDRS) | $(BUILD)/.dirs
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(HOST_INC) -fPIE $(JANSSON_CFLAGS) $(NETTLE_CFLAGS) $(CURL_CFLAGS) $(PSL_CFLAGS) -c $< -o $@

$(BUILD)/obj/common/%.o: src/common/%.c $(wildcard src/common/*.h) | $(BUILD)/.dirs
	$(CC) $(CFLAGS_ALL) -Isrc/common -fPIE -c $< -o $@

$(BUILD)/gobj/%.o: src/%.c $(GUEST_HDRS) | $(BUILD)/.dirs
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(BUILD)/sgobj/%.o: src/%.c $(GUEST_HDRS) | $(BUILD)/.dirs
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) $(SAN_CFLAGS) -c $< -o $@

$(BUILD)/.dirs:
	mkdir -p $(BUILD)/obj/common $(BUILD)/obj/host $(BUILD)/obj/guest \
		$(BUILD)/gobj/common $(BUILD)/gobj/guest $(BUILD)/tests \
		$(BUILD)/fuzz
	touch $@

$(BUILD)/ccvm-init: $(GUEST_OBJS) $(BUILD)/gobj/guest/main.o
	$(CC) -static-pie -s -Wl,-z,relro,-z,now -o $@ $^

# The guest init travels inside the host binary (kvmtool's way), so a
# single file is all an install needs.
# So do the guest kernel's config fragment and its patch
# (src/host/image/guest-kernel.config, src/host/image/guest-kernel.patch).
KCONFIG_FRAGMENT := src/host/image/guest-kernel.config
KERNEL_PATCH := src/host/image/guest-kernel.patch
$(BUILD)/obj/host/embed.o: $(BUILD)/ccvm-init $(KCONFIG_FRAGMENT) $(KERNEL_PATCH) | $(BUILD)/.dirs
	printf '.section .rodata\n.balign 16\n.global ccvm_init_blob\nccvm_init_blob:\n.incbin "%s"\n.global ccvm_init_blob_end\nccvm_init_blob_end:\n.global ccvm_kconfig_blob\nccvm_kconfig_blob:\n.incbin "%s"\n.global ccvm_kconfig_blob_end\nccvm_kconfig_blob_end:\n.global ccvm_kpatch_blob\nccvm_kpatch_blob:\n.incbin "%s"\n.global ccvm_kpatch_blob_end\nccvm_kpatch_blob_end:\n.section .note.GNU-stack,"",@progbits\n' \
		"$(BUILD)/ccvm-init" "$(KCONFIG_FRAGMENT)" "$(KERNEL_PATCH)" | $(CC) -c -x assembler -o $@ -

$(BUILD)/libccvm.a: $(HOST_OBJS) $(COMMON_OBJS) $(BUILD)/obj/host/embed.o
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libccvm-guest.a: $(GUEST_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libccvm-guest-san.a: $(GUEST_SAN_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/ccvm: $(BUILD)/obj/host/main.o $(BUILD)/libccvm.a
	$(CC) $(HOST_LDFLAGS) -o $@ $^ $(HOST_LIBS)

$(BUILD)/tests/test_guest_%: tests/unit/test_guest_%.c $(GUEST_TEST_LIB)
	$(CC) $(CFLAGS_ALL) $(GUEST_INC) $(CMOCKA_CFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(SAN_CFLAGS)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libccvm.a
	$(CC) $(CFLAGS_ALL) $(HOST_INC) $(CMOCKA_CFLAGS) $(JANSSON_CFLAGS) -o $@ $^ \
		$(CMOCKA_LIBS) $(HOST_LIBS) $(SAN_CFLAGS) $(TEST_LDFLAGS)

# The hand-over's test sees ccvm's copy of the key wiped (test_handover.c).
$(BUILD)/tests/test_handover: TEST_LDFLAGS := -Wl,--wrap=procs_secret_free

unit: $(UNIT_BINS)

# Fuzz targets: clang's libFuzzer over the pure parsers, with ASan+UBSan.
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
	$(HOST_INC) -DCCVM_VERSION='"$(VERSION)"'
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(HOST_SRCS) $(COMMON_SRCS) $(BUILD)/obj/host/embed.o | $(BUILD)/.dirs
	$(FUZZ_CC) $(FUZZ_FLAGS) $(JANSSON_CFLAGS) -o $@ $< $(HOST_SRCS) \
		$(COMMON_SRCS) $(BUILD)/obj/host/embed.o $(HOST_LIBS)

fuzz: $(FUZZ_BINS)

# Each fuzzer once over its corpus, no new inputs: seconds, deterministic
# (after a parser change).  `make check` does the same, then fuzzes a little.
fuzz-replay: $(FUZZ_BINS)
	BUILD=$(BUILD) CCVM_TEST_ONLY=fuzz CCVM_FUZZ_RUNS=0 tests/run

check: all unit fuzz
	BUILD=$(BUILD) tests/run

# The unit tests (host code and a sanitized copy of the guest code) and one
# session (host code only: the guest init stays static and plain).
asan:
	$(MAKE) BUILD=build/asan SAN_CFLAGS='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all' unit all
	BUILD=build/asan CCVM_TEST_ONLY=unit tests/run
	BUILD=build/asan CCVM_TEST_ONLY=integration \
		CCVM_TEST_FILTER='20-session.sh' tests/run

# clang-tidy's checks and which of them are errors: .clang-tidy.
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--inline-suppr --std=c11 $(HOST_INC) src/common src/host
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--inline-suppr --std=c11 $(GUEST_INC) src/guest
	clang-tidy --quiet $(COMMON_SRCS) $(HOST_SRCS) src/host/main.c \
		-- $(BASE_CFLAGS) $(HOST_INC) $(JANSSON_CFLAGS)
	clang-tidy --quiet $(GUEST_SRCS) src/guest/main.c \
		-- $(BASE_CFLAGS) $(GUEST_INC)
	clang-format --dry-run --Werror $(ALL_SRC_FILES)

format:
	clang-format -i $(ALL_SRC_FILES)

bench: all
	bench/run
	bench/fs
	bench/egress
	bench/apiproxy
	bench/tty
	bench/soak

# What building and running ccvm needs; `.ci/deps` alone adds what CI and
# the tests use.
deps:
	.ci/deps --runtime

clean:
	rm -rf $(BUILD) build

# Installation: one binary (the guest init is embedded in it), the man
# page, shell completions and the docs.  PREFIX=$HOME/.local works as is:
# ~/.local/bin is on Debian's login PATH, man finds ../share/man next to a
# PATH entry, bash-completion looks in ~/.local/share/bash-completion.
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/ccvm
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
# README.md's links point into docs/: keep that layout under DOCDIR.
DOC_FILES := $(sort $(wildcard docs/*.md))

install: $(BUILD)/ccvm
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR)
	install -m 0755 $(BUILD)/ccvm $(DESTDIR)$(BINDIR)/ccvm
	install -m 0644 docs/ccvm.1 $(DESTDIR)$(MANDIR)/man1/ccvm.1
	install -m 0644 contrib/completions/ccvm.bash \
		$(DESTDIR)$(BASHCOMPDIR)/ccvm
	install -m 0644 contrib/completions/_ccvm $(DESTDIR)$(ZSHCOMPDIR)/_ccvm
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 LICENSE $(DESTDIR)$(DOCDIR)/LICENSE
	install -m 0644 $(DOC_FILES) $(DESTDIR)$(DOCDIR)/docs

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/ccvm $(DESTDIR)$(MANDIR)/man1/ccvm.1 \
		$(DESTDIR)$(BASHCOMPDIR)/ccvm $(DESTDIR)$(ZSHCOMPDIR)/_ccvm \
		$(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/LICENSE \
		$(addprefix $(DESTDIR)$(DOCDIR)/docs/,$(notdir $(DOC_FILES)))
	-rmdir $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)
