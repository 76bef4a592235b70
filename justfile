# framebus tasks. `just` alone runs the same gate as CI.

default: test

# Build every binary (debug). `up` builds the same set, so the dependencies are built with the
# same features (examples bring dev-dependency features) and never twice.
# The template project `examples/rust-reader` (not a workspace member) shares the target folder.
build:
    cargo build --workspace --bins --examples
    cargo build --manifest-path examples/rust-reader/Cargo.toml --target-dir target

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy -p framebus --all-targets --features opencv -- -D warnings
    cargo fmt --manifest-path examples/rust-reader/Cargo.toml -- --check
    cargo clippy --manifest-path examples/rust-reader/Cargo.toml --target-dir target -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
    python3 scripts/size-limits.py
    python3 scripts/module-graph.py > /dev/null

# The whole test suite: lints, unit tests, end-to-end tests of the real binaries (Rust, then Python's pytest).
test: lint build
    cargo test --workspace
    just pytest

# The Python package's tests (python/tests) against the debug binaries (venv from scripts/bootstrap.sh).
# Their temporary folders go to target/pytest (emptied by each run), not /tmp.
pytest *args: python
    .venv/bin/python -m pytest python/tests -q --basetemp=target/pytest {{args}}

# (Re)build the Python package's compiled part (crates/framebus-py) into .venv, in place (`pip install -e`).
python:
    @test -x .venv/bin/python || { echo "no .venv: run bash scripts/bootstrap.sh first" >&2; exit 1; }
    PATH="$PWD/.venv/bin:$PATH" CARGO_TARGET_DIR="$PWD/target" .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e python

# `exec`: Ctrl-C reaches ctl up itself, which stops every process and exits 0 (a shell left in
# between would die of the SIGINT afterwards); `[continue]`: just then ends without an error.

# Bring up a deployment under the supervisor (`ctl up`) until Ctrl-C; `ctl` talks to it meanwhile.
[continue]
up config="configs/default.toml" profile="release":
    cargo build --profile {{profile}} --workspace --bins --examples
    @bash scripts/link-ctl.sh target/{{ if profile == "dev" { "debug" } else { profile } }}/ctl
    exec target/{{ if profile == "dev" { "debug" } else { profile } }}/ctl up --config {{config}}

# Put `ctl` on PATH (a link in ~/.cargo/bin to this checkout's release build); `just up` does it too.
install-ctl:
    cargo build --release --workspace --bins
    bash scripts/link-ctl.sh target/release/ctl

# Status of the running deployment (release build of ctl).
status config="configs/default.toml":
    target/release/ctl status --config {{config}}

# Benchmarks: latency and publish cost vs memcpy, and a Python reader next to a Rust one (release build).
bench: python
    cargo build --release --bins
    target/release/framebus-bench

fmt:
    cargo fmt --all

# Fuzz the control-request decoder, the config loader and the media server's WHEP offer handling
# (proptest, release build): CASES per property (a tenth for the one that runs webrtcbin).
fuzz cases="200000":
    PROPTEST_CASES={{cases}} cargo test --release -p framebus-common --test fuzz -- --nocapture
    PROPTEST_CASES={{cases}} cargo test --release -p framebus-mediaserver --test fuzz -- --nocapture

# Soak: a deployment under random kill -9, SIGSTOP/SIGCONT, ctl bursts and viewer churn for MINUTES, then checks (release build).
soak minutes="30":
    cargo build --release --bins -p framebus-e2e
    cargo build --release --workspace --bins
    target/release/framebus-soak --minutes {{minutes}}
