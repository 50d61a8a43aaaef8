#!/usr/bin/env bash
# Lints the Dockerfile with hadolint (pinned in scripts/python-tools.txt); fails on any warning.
# Run by `make test`, so the image's build file is checked on every CI run even where no Docker
# engine exists.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/dev-common.sh
pytools
"$PYTOOLS/bin/hadolint" --failure-threshold warning Dockerfile
# The image's binary is built by the same make target CI builds and tests (Makefile `release`).
grep -Eq '^[[:space:]]+make release' Dockerfile || {
  echo "Dockerfile: the build stage must run \`make release\`, the target CI builds" >&2
  exit 1
}
echo "hadolint: Dockerfile clean; it builds with make release"
