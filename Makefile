# sasgate developer entry points. `make test` is the one test command (README.md, .ci/run).
.PHONY: test deps bench

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
