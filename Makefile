# Two entry points: `make demo` (the main job) and `make test` (every test).
# Both set up what they need first: a virtualenv in .venv with damonx built
# and installed in it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := build/demo

.PHONY: setup demo demo-vm test lint test-c bench-ext test-host test-vm test-vm-current test-vm-numa kernel clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip

setup: $(PY)
	$(PY) -m pip install -q -e '.[test,lint]'

# A simulated recording and its reports; on a machine with idle page
# tracking, a real process is recorded too.
demo: setup
	@mkdir -p $(DEMO)
	$(VENV)/bin/damonx features
	$(VENV)/bin/damonx record --ops sim --workload examples/moving-hot.json \
		--timeout 20 -o $(DEMO)/sim.data --overwrite
	$(VENV)/bin/damonx report access -i $(DEMO)/sim.data
	$(VENV)/bin/damonx report wss -i $(DEMO)/sim.data
	$(VENV)/bin/damonx report heatmap -i $(DEMO)/sim.data --resol 20 60
	$(VENV)/bin/damonx report heatmap -i $(DEMO)/sim.data -o $(DEMO)/heatmap.png
	$(VENV)/bin/damonx report wss -i $(DEMO)/sim.data -o $(DEMO)/wss.png
	@if [ -w /sys/kernel/mm/page_idle/bitmap ]; then \
		$(VENV)/bin/damonx record --timeout 5 -o $(DEMO)/real.data --overwrite -- \
			$(PY) tests/vm/workload.py --size-mib 256 --hot-mib 32 && \
		$(VENV)/bin/damonx report wss -i $(DEMO)/real.data; \
	else echo "(no idle page tracking here: real recording skipped; see damonx features)"; fi
	@echo "images: $(DEMO)/heatmap.png $(DEMO)/wss.png"

# The real thing where this machine has neither idle page tracking nor the
# kernel's DAMON (Debian 12, Android): a process recorded inside the
# project's VM under each backend (page_idle, kernel), reported here.  The
# first run builds the VM's kernel (see README.md).
DEMO_ABS := $(abspath $(DEMO))
demo-vm: setup
	@mkdir -p $(DEMO)
	DAMONX_VM_RWDIRS=$(DEMO_ABS) tools/vmtest/run -- sh -c '\
		$(abspath $(VENV))/bin/damonx features | sed -n "/^backend/,\$$p" && \
		for b in page_idle kernel; do \
			$(abspath $(VENV))/bin/damonx record --backend $$b --timeout 10 --overwrite \
				-o $(DEMO_ABS)/vm-$$b.data -- \
				$(abspath $(PY)) tests/vm/workload.py --size-mib 256 --hot-mib 32 || exit 1; \
		done'
	for b in page_idle kernel; do \
		echo "== recorded in the VM with --backend $$b"; \
		$(VENV)/bin/damonx report wss -i $(DEMO)/vm-$$b.data || exit 1; \
		$(VENV)/bin/damonx report heatmap -i $(DEMO)/vm-$$b.data --resol 10 60 || exit 1; \
		$(VENV)/bin/damonx report heatmap -i $(DEMO)/vm-$$b.data -o $(DEMO)/vm-$$b-heatmap.png; \
	done
	@echo "images: $(DEMO)/vm-page_idle-heatmap.png $(DEMO)/vm-kernel-heatmap.png"

test: setup lint test-c bench-ext test-host test-vm test-vm-current test-vm-numa

# ruff (lint and format) for the Python, mypy for the package, clang-format
# (the kernel's style, .clang-format) for the C
C_SOURCES = $(wildcard csrc/*.[ch] csrc/tests/*.[ch] benchmarks/csrc/*.[ch] benchmarks/workloads/*.[ch])
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/clang-format --dry-run --Werror $(C_SOURCES)

test-c:
	$(MAKE) -s -C csrc test

# the benchmarks' extension (benchmarks/_bench), built in place on the host:
# the benchmarks and one VM test use it, and the VM sees the checkout read-only
bench-ext: setup
	$(PY) benchmarks/bench_ext.py

test-host:
	DAMONX_VMTEST=1 $(PY) -m pytest -q tests benchmarks/tests tools/vmtest/tests

# the real-kernel tier: builds (once, cached) and boots the test kernel,
# Debian 12's 6.12 (VM_KERNEL) for the whole tier and the newest 7.x of
# Debian's trixie-backports (VM_KERNEL_CURRENT) for a smoke subset; see
# tools/vmtest/README.md
VM_KERNEL ?= 6.12
VM_KERNEL_CURRENT ?= 7

test-vm: bench-ext
	DAMONX_VM_KERNEL=$(VM_KERNEL) tools/vmtest/run -- $(abspath $(PY)) -m pytest -q -m vm tests/vm

# the smoke tests skip on a kernel without page_idle or DAMON sysfs: fail instead
test-vm-current: bench-ext
	DAMONX_VM_KERNEL=$(VM_KERNEL_CURRENT) tools/vmtest/run -- sh -c \
		'test -e /sys/kernel/mm/page_idle/bitmap && test -d /sys/kernel/mm/damon/admin || \
		{ echo "the guest kernel lacks idle page tracking or DAMON sysfs"; exit 1; }; exec "$$@"' sh \
		$(abspath $(PY)) -m pytest -q -m "vm and smoke" tests/vm

# the tests that need two NUMA nodes (migrate_hot, migrate_cold), in a boot
# of their own; they skip on one node, so fail if the guest has one
test-vm-numa: bench-ext
	DAMONX_VM_KERNEL=$(VM_KERNEL) DAMONX_VM_NUMA=2 tools/vmtest/run -- sh -c \
		'test -d /sys/devices/system/node/node1 || \
		{ echo "the guest has one NUMA node"; exit 1; }; exec "$$@"' sh \
		$(abspath $(PY)) -m pytest -q -m "vm and numa" tests/vm

kernel:
	DAMONX_VM_KERNEL=$(VM_KERNEL) tools/vmtest/run --build
	DAMONX_VM_KERNEL=$(VM_KERNEL_CURRENT) tools/vmtest/run --build

# the sdist and the wheel, each installed in a fresh venv and used from outside the tree
.PHONY: dist-check
dist-check: setup
	PYTHON=$(abspath $(PY)) VENV_PYTHON=$(PYTHON) tools/check-dist

clean:
	rm -rf build src/damonx/_core.c src/damonx/*.so benchmarks/_bench.c benchmarks/*.so
