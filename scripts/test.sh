#!/usr/bin/env bash
# Runs the whole test suite against real services: installs PostgreSQL, Redis and Chromium from
# Debian packages when missing (needs root, as on CI), starts throwaway instances on loopback,
# runs lint, types and pytest, and stops the services again.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
source scripts/services.sh
services_up
trap services_down EXIT
$BIN/ruff check src tests bench
$BIN/mypy
$BIN/python -m pytest "$@"
