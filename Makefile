# Two entry points for people: `make shell` and `make test`. Everything they need is installed here,
# so that a machine with only Python 3.11 and the package registries can run both.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: shell test test-slow onebox system-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Debian packages that the end-to-end tests drive: tmux, iproute2 (`ip netns`, for test hosts in network
# namespaces) and ZooKeeper (a real server for the meta servers' shared state). Installed only when missing;
# needs root or sudo.
system-deps:
	@{ command -v tmux && command -v ip && [ -f /usr/share/java/zookeeper.jar ]; } >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq tmux iproute2 zookeeper >/dev/null; }

shell: $(STAMP)
	$(BIN)/pegasus-shell

onebox: $(STAMP)
	$(BIN)/pegasus-node onebox --data-dir ./onebox-data --replicas 3

test: $(STAMP) system-deps
	$(BIN)/pytest -m "not slow"

test-slow: $(STAMP) system-deps
	$(BIN)/pytest -m slow

clean:
	rm -rf $(VENV) .pytest_cache
