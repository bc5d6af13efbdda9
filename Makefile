# Maillage — one-command set-up: `make run` starts the demo Pôle, `make test` runs the test suite.
# Both install everything they need on a fresh machine (Python 3.11, Java 17, Maven, PostgreSQL); `make
# compose-test` installs Docker's engine, docker-compose and debootstrap as well.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test unit integration e2e bench chaos chaos-smoke demo schemas messages lint package system-deps kafka-jars clean compose-deps compose-test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  echo "installing Java 17 and Maven from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven; }
	@test -x /usr/bin/chromium || { \
	  echo "installing Chromium (headless browser tests drive it through Playwright) from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL (the test session starts a server of its own on it) from Debian's packages"; \
	  mkdir -p /etc/postgresql-common/createcluster.d; \
	  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/maillage.conf; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

kafka-jars: system-deps $(BIN)/.installed
	$(BIN)/python -c "from maillage.cli.kafka_local import ensure_jars; print('Kafka jars in', ensure_jars())"

run: kafka-jars
	$(BIN)/maillage up

demo: $(BIN)/.installed
	$(BIN)/maillage demo

test: kafka-jars
	$(BIN)/pytest --durations=15

unit: $(BIN)/.installed
	$(BIN)/pytest -m unit

integration: kafka-jars
	$(BIN)/pytest -m integration

e2e: kafka-jars
	$(BIN)/pytest -m e2e

bench: kafka-jars
	$(BIN)/maillage bench

chaos: kafka-jars
	$(BIN)/maillage chaos

# The short form `.ci/run` runs: exits non-zero if a referral was lost or duplicated, or a POST got a 5xx
# other than a 503 with Retry-After.
chaos-smoke: kafka-jars
	$(BIN)/maillage chaos --smoke

compose-deps:
	@command -v dockerd >/dev/null && command -v docker-compose >/dev/null && command -v debootstrap >/dev/null || { \
	  echo "installing Docker's engine, docker-compose and debootstrap from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap; }

# The compose deployment built here (base image by debootstrap), started, faulted under the demo, checked, removed.
compose-test: compose-deps
	$(PYTHON) deploy/compose_test.py

schemas: $(BIN)/.installed
	$(BIN)/maillage schemas

# The web pages' messages files, from the message catalogs (services/maillage/core/i18n/locale).
messages: $(BIN)/.installed
	$(BIN)/maillage messages

lint: $(BIN)/.installed
	$(BIN)/ruff check services tests deploy
	$(BIN)/ruff format --check services tests deploy
	$(BIN)/mypy

# The package alone: a wheel installed in an empty venv runs from any directory (no file found through the checkout).
package: $(BIN)/.installed
	bash .ci/package-check

clean:
	rm -rf $(VENV) var bench-results test-artifacts
