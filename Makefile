# sluice — build, run, test.
GO      ?= go
BIN     := bin/sluice
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

# Packages whose tests never confine threads: the race detector (which
# needs cgo) runs on these. The binary itself is always built with
# CGO_ENABLED=0: syscall.AllThreadsSyscall, which the privilege drop and
# the sandbox rely on, returns ENOTSUP in a cgo binary.
RACE_PKGS := ./ftp/... ./datapath/... ./daemon/ipc/...

.PHONY: all build run test test-unit test-race test-timing vet fmt-check fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sluice

# Starts the server on the embedded default: FTP with explicit FTPS on
# 127.0.0.1:2121 and [::1]:2121, implicit FTPS on 127.0.0.1:2990, SFTP on
# 127.0.0.1:2222 (self-signed certificate and host key generated under
# ./var/lib on first start), account demo/demo (loopback only), files
# under ./var/ftp.
run: build
	./$(BIN) serve

test: fmt-check vet build test-unit test-race test-timing

test-unit:
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 12m ./...

# Tests that measure rates run last and alone (-p 1), not beside the
# integration tests that load both cores.
test-timing:
	SLUICE_TIMING=1 CGO_ENABLED=0 $(GO) test -count=1 -p 1 -timeout 5m -run 'TestPacing' ./bpf/
	SLUICE_TIMING=1 CGO_ENABLED=0 $(GO) test -count=1 -p 1 -timeout 5m -run 'TestBandwidthShared' ./cmd/sluice/

test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 8m $(RACE_PKGS)

vet:
	CGO_ENABLED=0 $(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Runs every fuzz target for FUZZTIME each (default 1m).
FUZZTIME ?= 1m
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    CGO_ENABLED=1 $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin

# Benchmarks (issue 3): sluice against vsftpd, proftpd and pure-ftpd
# (unpacked side by side by bench/install-peers.sh) and a raw sendfile
# baseline, on loopback, as root. `bench` writes docs/benchmarks.md and the
# charts beside it (~15 min); `bench-quick` is the reduced set (<2 min)
# and writes var/bench-quick/ so that it never replaces the full page.
bench: build
	sh bench/install-peers.sh
	$(GO) run ./bench/cmd/harness -out docs/benchmarks.md

bench-quick: build
	sh bench/install-peers.sh
	$(GO) run ./bench/cmd/harness -quick -out var/bench-quick/benchmarks.md
.PHONY: bench bench-quick

# Rebuilds the committed eBPF objects and Go bindings in bpf/ (bpf2go at the
# cilium/ebpf version in go.mod). Needs clang-14, llvm-strip-14 and bpftool
# (Debian: clang-14 llvm-14 bpftool); vmlinux.h comes from the running
# kernel's BTF. Building and testing sluice need none of these.
.PHONY: generate
generate:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/headers/vmlinux.h
	$(GO) generate ./bpf/

# Installation (issue 9). DESTDIR and PREFIX are honoured; the unit's
# paths follow PREFIX and SYSCONFDIR.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
.PHONY: install deb
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/sluice
	sed -e 's|/usr/bin/sluice|$(PREFIX)/bin/sluice|g' -e 's|/etc/sluice/|$(SYSCONFDIR)/sluice/|g' \
	    dist/sluice.service > dist/sluice.service.out
	install -D -m 0644 dist/sluice.service.out $(DESTDIR)$(UNITDIR)/sluice.service
	rm -f dist/sluice.service.out
	install -D -m 0644 dist/sluice.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/sluice.conf
	install -D -m 0644 dist/sluice.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/sluice.conf
	install -D -m 0600 dist/sluice.toml $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.toml
	install -D -m 0644 sluice.example.toml $(DESTDIR)$(PREFIX)/share/doc/sluice/sluice.example.toml
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/sluice/README.md
	install -D -m 0644 SECURITY.md $(DESTDIR)$(PREFIX)/share/doc/sluice/SECURITY.md
	install -d $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5
	./$(BIN) man sluice.8 | gzip -9n > $(DESTDIR)$(PREFIX)/share/man/man8/sluice.8.gz
	./$(BIN) man sluice.toml.5 | gzip -9n > $(DESTDIR)$(PREFIX)/share/man/man5/sluice.toml.5.gz

# A Debian package built with dpkg-deb alone: dist/out/sluice_<version>_<arch>.deb.
deb: build
	sh dist/mkdeb.sh dist/out
