# `make demo` and `make test` each do ALL set-up on a fresh Debian machine (root, Rust stable,
# Python 3.11): Debian packages, the pinned Python virtualenv, the Rust build.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
PYTHON ?= python3
# Targets and prerequisites are relative paths: make splits them at spaces, and the repository's
# path may hold one. Recipes run here; the absolute paths below (exported) are quoted in them.
VENV := .venv
VENV_SGXRA := .venv-sgxra
VENV_MSE_CLI := .venv-mse-cli
VENV_VM := .venv-vm
BIN := target/debug
# Debian packages that the build, the tests or the demo need (installed only when missing;
# e2fsprogs: the VM launcher formats each guest's $HOME disk with mkfs.ext4;
# ovmf: the firmware of the SEV-SNP launch-digest differential tests).
APT_PACKAGES := curl ca-certificates fuse3 pkg-config e2fsprogs ovmf

# Tests find the pinned virtualenv and the freshly built binaries through these.
export MSE_TEST_VENV := $(CURDIR)/$(VENV)
export MSE_SGXRA_VENV := $(CURDIR)/$(VENV_SGXRA)
export MSE_CLI_VENV := $(CURDIR)/$(VENV_MSE_CLI)
export MSE_BIN_DIR := $(CURDIR)/$(BIN)
# The VM launcher's tests (crates/mse-launch/tests/vm.rs) boot this guest image with this venv.
export MSE_VM_IMAGE := $(CURDIR)/target/image
export MSE_VM_VENV := $(CURDIR)/$(VENV_VM)
# pyo3 builds against this interpreter; its libpython is found at run time via the rpath that
# crates/mse-wsgi's build script sets.
export PYO3_PYTHON ?= $(shell command -v $(PYTHON))

.PHONY: all demo test setup apt venv build lint rust-test py-test clean image qemu image-test

all: build

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.stamp: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

# PyPI intel-sgx-ra pins a cryptography that conflicts with mse-lib-crypto's: its own venv.
$(VENV_SGXRA)/.stamp: tests/requirements-sgx-ra.txt
	$(PYTHON) -m venv $(VENV_SGXRA)
	$(VENV_SGXRA)/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements-sgx-ra.txt
	touch $@

# PyPI mse-cli 1.3 (the original client, for the configuration-protocol compatibility test) pins
# urllib3<1.27, pydantic<2 and cryptography<43: its own venv too.
$(VENV_MSE_CLI)/.stamp: tests/requirements-mse-cli.txt
	$(PYTHON) -m venv $(VENV_MSE_CLI)
	$(VENV_MSE_CLI)/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements-mse-cli.txt
	touch $@

# Flask only: packed into the guest's environment disk by the VM launcher's tests and bench.
$(VENV_VM)/.stamp: tests/requirements-vm.txt
	$(PYTHON) -m venv $(VENV_VM)
	$(VENV_VM)/bin/python -m pip install -q --disable-pip-version-check --only-binary :all: -r tests/requirements-vm.txt
	touch $@

venv: $(VENV)/.stamp $(VENV_SGXRA)/.stamp $(VENV_MSE_CLI)/.stamp $(VENV_VM)/.stamp

setup: apt venv

build: apt
	$(CARGO) build --workspace --bins

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

rust-test: setup build image qemu
	$(CARGO) test --workspace

py-test: setup build
	$(VENV)/bin/python -m pytest -q tests/python

test: setup build lint rust-test image-test py-test

# The whole story on a local node (sim TEE), each step explained and checked: node, project,
# login, scaffold, localtest, deploy, verify, curl, logs, stop (scripts/demo.sh; its outputs in
# demo-out/). The app's virtualenvs are built with pip at the first run and cached
# (~/.cache/mse for localtest, demo-out/cache for the node). tests/python/test_demo.py runs the
# same script on any free ports with the pinned venv.
# DEMO_LAUNCHER=vm make demo: the same story with VM enclaves (guest image, QEMU, TCG here).
demo: setup build $(if $(filter vm,$(DEMO_LAUNCHER)),image qemu)
	scripts/demo.sh

# The guest image of VM enclaves (docs/image.md): target/image/{vmlinuz,initrd.img,image.json},
# from image/packages + the committed image/lock (Debian packages fetched by the build's own
# private apt, cached in ~/.cache/mse/image) and target/debug/mse-enclave as /init. When Debian
# no longer has a locked version, the lock is resolved afresh and rewritten, with a loud
# "image lock moved" warning (commit the new lock).
IMAGE_APT_PACKAGES := binutils debian-archive-keyring git
image: apt build
	@missing=""; for p in $(IMAGE_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# /init is make build's mse-enclave (cargo test may have relinked it with other features)
	$(CARGO) build -q --workspace --bin mse-enclave
	"$(MSE_BIN_DIR)/mse-node" image build --out "$(MSE_VM_IMAGE)" --enclave "$(MSE_BIN_DIR)/mse-enclave" --update-lock-if-moved

# QEMU >= 10 from bookworm-backports (bookworm's 7.2 double-faults under TCG on the guest's
# initramfs); adds the backports suite to the host's apt sources (scripts/apt-backports.sh).
qemu:
	@if ! qemu-system-x86_64 --version 2>/dev/null | grep -qE 'version (1[0-9]|[2-9][0-9])\.'; then \
	  scripts/apt-backports.sh; \
	  echo "installing qemu-system-x86 from bookworm-backports"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports qemu-system-x86 >/dev/null; \
	fi

# Reproducibility (a second copy of the sources in another directory builds the same digests)
# and a TCG boot to /init (scripts/image-test.sh).
image-test: image qemu
	scripts/image-test.sh

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(VENV_SGXRA) $(VENV_MSE_CLI) $(VENV_VM) demo-out
