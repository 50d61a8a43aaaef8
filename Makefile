# sasgate developer entry points. `make test` is the one test command (README.md, .ci/run).
.PHONY: test deps bench run

# Azurite (the storage emulator the integration tests run against) is pinned in package-lock.json.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

deps: node_modules/.package-lock.json

test: deps
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
	cargo test --locked

bench:
	cargo bench --bench sign

# Run the broker on its shipped config/ and policy/, in front of a local Azurite over HTTPS.
run: deps
	scripts/run-dev.sh
