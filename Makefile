# `make demo` and `make test` each do ALL set-up on a fresh Debian machine (root, Rust stable,
# Python 3.11): Debian packages, the pinned Python virtualenv, the Rust build.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
PYTHON ?= python3
VENV := $(CURDIR)/.venv
VENV_SGXRA := $(CURDIR)/.venv-sgxra
VENV_MSE_CLI := $(CURDIR)/.venv-mse-cli
BIN := $(CURDIR)/target/debug
# Debian packages that the build, the tests or the demo need (installed only when missing).
APT_PACKAGES := curl ca-certificates fuse3 pkg-config

# Tests find the pinned virtualenv and the freshly built binaries through these.
export MSE_TEST_VENV := $(VENV)
export MSE_SGXRA_VENV := $(VENV_SGXRA)
export MSE_CLI_VENV := $(VENV_MSE_CLI)
export MSE_BIN_DIR := $(BIN)
# pyo3 builds against this interpreter; its libpython is found at run time via the rpath that
# crates/mse-wsgi's build script sets.
export PYO3_PYTHON ?= $(shell command -v $(PYTHON))

.PHONY: all demo test setup apt qemu venv build lint rust-test py-test clean

all: build

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# QEMU 10 for the VM launcher (Debian's own 7.2 double-faults under TCG while unpacking a
# realistic initramfs into the 6.12 kernel): from bookworm-backports, added to apt's sources.
BACKPORTS_SOURCES := /etc/apt/sources.list.d/bookworm-backports.sources
qemu:
	@if ! qemu-system-x86_64 --version 2>/dev/null | grep -qE 'version (1[0-9]|[2-9][0-9])\.'; then \
	  if [ ! -e $(BACKPORTS_SOURCES) ]; then \
	    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > $(BACKPORTS_SOURCES); \
	  fi; \
	  echo "installing qemu-system-x86 from bookworm-backports"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null; \
	fi

$(VENV)/.stamp: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

# PyPI intel-sgx-ra pins a cryptography that conflicts with mse-lib-crypto's: its own venv.
$(VENV_SGXRA)/.stamp: tests/requirements-sgx-ra.txt
	$(PYTHON) -m venv $(VENV_SGXRA)
	$(VENV_SGXRA)/bin/pip install -q --disable-pip-version-check -r tests/requirements-sgx-ra.txt
	touch $@

# PyPI mse-cli 1.3 (the original client, for the configuration-protocol compatibility test) pins
# urllib3<1.27, pydantic<2 and cryptography<43: its own venv too.
$(VENV_MSE_CLI)/.stamp: tests/requirements-mse-cli.txt
	$(PYTHON) -m venv $(VENV_MSE_CLI)
	$(VENV_MSE_CLI)/bin/pip install -q --disable-pip-version-check -r tests/requirements-mse-cli.txt
	touch $@

venv: $(VENV)/.stamp $(VENV_SGXRA)/.stamp $(VENV_MSE_CLI)/.stamp

setup: apt venv

build: apt
	$(CARGO) build --workspace --bins

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

rust-test: setup build
	$(CARGO) test --workspace

py-test: setup build
	$(VENV)/bin/python -m pytest -q tests/python

test: setup build lint rust-test py-test

# The whole story on a local node (sim TEE), each step explained and checked: node, project,
# login, scaffold, localtest, deploy, verify, curl, logs, stop (scripts/demo.sh; its outputs in
# demo-out/). The app's virtualenvs are built with pip at the first run and cached
# (~/.cache/mse for localtest, demo-out/cache for the node). tests/python/test_demo.py runs the
# same script on any free ports with the pinned venv.
demo: setup build
	MSE_BIN_DIR=$(BIN) scripts/demo.sh

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(VENV_SGXRA) $(VENV_MSE_CLI) demo-out
