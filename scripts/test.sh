#!/usr/bin/env bash
# Runs every *.test.ts under src/ and tests/ with node:test through tsx.
# Node 20's `node --test` takes no globs and silently finds no .ts files, so the list is explicit.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t TESTS < <(find src tests -name '*.test.ts' | sort)
if [ "${#TESTS[@]}" -eq 0 ]; then echo "no test files found" >&2; exit 1; fi
exec node --import tsx --test --test-force-exit --test-timeout=120000 --test-concurrency=2 "$@" "${TESTS[@]}"
