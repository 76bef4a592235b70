# framebus tasks. `just` alone runs the same gate as CI.

default: test

# Build every binary (debug).
build:
    cargo build --workspace --bins --examples

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The whole test suite: lints, unit tests, and end-to-end tests that start the real binaries.
test: lint build
    cargo test --workspace

# Bring up a deployment under the supervisor (`ctl up`) until Ctrl-C; `ctl` talks to it meanwhile.
up config="configs/default.toml":
    cargo build --release --bins
    target/release/ctl up --config {{config}}

# Status of the running deployment (release build of ctl).
status config="configs/default.toml":
    target/release/ctl status --config {{config}}

# Benchmarks: latency and publish cost vs memcpy, printed as a table (release build).
bench:
    cargo build --release --bins
    target/release/framebus-bench

fmt:
    cargo fmt --all

# Fuzz the control-request decoder and the config loader (proptest, release build): CASES per property.
fuzz cases="200000":
    PROPTEST_CASES={{cases}} cargo test --release -p framebus-common --test fuzz -- --nocapture

# Soak: a deployment under random kill -9, SIGSTOP/SIGCONT, ctl bursts and viewer churn for MINUTES, then checks (release build).
soak minutes="30":
    cargo build --release --bins -p framebus-e2e
    cargo build --release --workspace --bins
    target/release/framebus-soak --minutes {{minutes}}
