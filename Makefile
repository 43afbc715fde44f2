# Two commands set everything up on a fresh Debian machine (README):
#   make demo   installs what is missing, then runs the demo end to end on the embedded data
#   make test   installs what is missing, then runs the fast suite and the slow end-to-end suite
# Everything is idempotent: a second run reuses the venv and the data cache and starts working in seconds.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export WIT_CACHE ?= $(HOME)/.cache/wit
export NO_ALBUMENTATIONS_UPDATE := 1
PYTEST_FLAGS ?= --durations=20
# The fast suite and most of the slow one run in two processes (pytest-xdist), a test file each at a time: each
# process has its own Ray, S3 server and image web. Tests marked ray_head start and stop a machine-wide Ray head
# (`ray stop` ends every Ray process of the machine, and pipelines join a running head), so they run alone, first.
FAST_FLAGS ?= -n 2 --dist loadfile
SLOW_FLAGS ?= -n 2 --dist loadfile

.PHONY: demo test test-fast test-slow lint install data browser lock ray-start ray-stop clean-demo

demo: install data
	$(BIN)/wit demo

test: install data browser lint
	$(BIN)/python -m pytest -q $(FAST_FLAGS) $(PYTEST_FLAGS)
	$(BIN)/python -m pytest -q -m "slow and ray_head" $(PYTEST_FLAGS)
	$(BIN)/python -m pytest -q -m "slow and not ray_head" $(SLOW_FLAGS) $(PYTEST_FLAGS)

# ruff (configured in pyproject.toml): lint and formatting, checked before the tests
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-fast: install data browser
	$(BIN)/python -m pytest -q $(FAST_FLAGS) $(PYTEST_FLAGS)

test-slow: install data
	$(BIN)/python -m pytest -q -m "slow and ray_head" $(PYTEST_FLAGS) || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -q -m "slow and not ray_head" $(SLOW_FLAGS) $(PYTEST_FLAGS) || [ $$? -eq 5 ]

install: $(STAMP)

# The lock file pins every distribution CI tested; torch is constrained so no dependency can pull a CUDA build.
$(STAMP): requirements.lock constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "install: $(PYTHON) not found (apt-get install python3 python3-venv)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "install: cannot create $(VENV) (apt-get install python3-venv)"; exit 1; }
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock -c constraints.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

# A headless Chromium for the test that renders the overlap report (Debian's package, ~60 MB, 18 packages).
BROWSERS := chromium-headless-shell chromium chromium-browser google-chrome
browser:
	@for b in $(BROWSERS); do command -v $$b >/dev/null && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "browser: installing chromium-headless-shell (Debian)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends chromium-headless-shell >/dev/null; }; \
	else echo "browser: no headless Chromium and no root apt-get: the page-rendering test will skip"; fi

data: install
	@PYTHON=$(BIN)/python bash infra/debian/fetch.sh

# Re-resolve the pins from pyproject.toml in a scratch venv and rewrite requirements.lock.
lock:
	rm -rf /tmp/wit-lock-venv && $(PYTHON) -m venv /tmp/wit-lock-venv
	/tmp/wit-lock-venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
	/tmp/wit-lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock

ray-start: install
	$(BIN)/wit ray start

ray-stop: install
	$(BIN)/wit ray stop
