# sasgate developer entry points. `make test` is the one test command (README.md, .ci/run).
.PHONY: test deps bench run release schemathesis lint-image reliability-quick

# Azurite (the storage emulator the integration tests run against) is pinned in package-lock.json.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

deps: node_modules/.package-lock.json

test: deps
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
	cargo test --locked
	$(MAKE) --no-print-directory lint-image schemathesis reliability-quick

# hadolint on the Dockerfile (pinned in scripts/python-tools.txt), and a check that its build
# stage runs `make release`.
lint-image:
	scripts/lint-image.sh

# The release binary against its own OpenAPI document: no 5xx, no response outside the schema.
schemathesis: deps release
	scripts/schemathesis.sh

# The release binary: the Dockerfile's build stage runs exactly this target, and `make test`
# builds it too (schemathesis runs against it), so the image holds what CI checked.
release:
	cargo build --release --locked --bin sasgate

# The quick parts of scripts/reliability.sh (issue 9): the attack and fault suites' figures
# and a 30-second soak of the release binary, in one table. The full run (fuzzing, the slow
# fault scenarios, a ten-minute soak) is `scripts/reliability.sh` without --quick.
reliability-quick: deps release
	scripts/reliability.sh --quick

bench:
	cargo bench --bench sign

# Run the broker on its shipped config/ and policy/, in front of a local Azurite over HTTPS.
run: deps
	scripts/run-dev.sh
