#!/usr/bin/env bash
# Installs what building and testing rill needs beyond the pinned Rust toolchain
# (rust-toolchain.toml): rustfmt and clippy, and the independent Kafka clients the broker's
# tests run against: kcat (librdkafka) from Debian's packages; kafka-python, confluent-kafka
# (its own librdkafka) and aiokafka from PyPI; kafkajs from the npm registry, into .clients/.
# Idempotent; safe to run on every CI start.
set -euo pipefail
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install rustup, which reads rust-toolchain.toml" >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
echo "setup: toolchain $(rustc --version)"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2
    return 1
  fi
}

if ! command -v kcat >/dev/null; then
  echo "setup: installing kcat (librdkafka) from the distribution's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
fi
echo "setup: kcat $(kcat -V 2>&1 | grep -m1 -o 'Version [^ ]* .*librdkafka [^ ]*')"

KAFKA_PYTHON_VERSION=2.0.2
if ! python3 -c "import kafka, sys; sys.exit(kafka.__version__ != '$KAFKA_PYTHON_VERSION')" 2>/dev/null; then
  echo "setup: installing kafka-python $KAFKA_PYTHON_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "kafka-python==$KAFKA_PYTHON_VERSION"
fi
echo "setup: kafka-python $(python3 -c 'import kafka; print(kafka.__version__)')"

CONFLUENT_KAFKA_VERSION=2.16.1
AIOKAFKA_VERSION=0.14.0
if ! python3 -c "import confluent_kafka, aiokafka, sys; sys.exit(confluent_kafka.__version__ != '$CONFLUENT_KAFKA_VERSION' or aiokafka.__version__ != '$AIOKAFKA_VERSION')" 2>/dev/null; then
  echo "setup: installing confluent-kafka $CONFLUENT_KAFKA_VERSION and aiokafka $AIOKAFKA_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "confluent-kafka==$CONFLUENT_KAFKA_VERSION" "aiokafka==$AIOKAFKA_VERSION"
fi
echo "setup: confluent-kafka $(python3 -c 'import confluent_kafka as c; print(c.__version__, "librdkafka", c.libversion()[0])'), aiokafka $(python3 -c 'import aiokafka; print(aiokafka.__version__)')"

# kafkajs, for the broker's tests (crates/rill-broker/tests/common: .clients/node_modules).
KAFKAJS_VERSION=2.2.4
CLIENTS_DIR="$(cd "$(dirname "$0")/.." && pwd)/.clients"
if ! command -v npm >/dev/null; then
  echo "setup: installing Node.js and npm from the distribution's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if ! (cd "$CLIENTS_DIR" 2>/dev/null && node -e "process.exit(require('kafkajs/package.json').version === '$KAFKAJS_VERSION' ? 0 : 1)" 2>/dev/null); then
  echo "setup: installing kafkajs $KAFKAJS_VERSION from the npm registry into $CLIENTS_DIR"
  mkdir -p "$CLIENTS_DIR"
  npm install --silent --prefix "$CLIENTS_DIR" --no-audit --no-fund "kafkajs@$KAFKAJS_VERSION" >/dev/null
fi
echo "setup: kafkajs $(cd "$CLIENTS_DIR" && node -p "require('kafkajs/package.json').version")"

# cargo-fuzz, for the fuzz targets CI runs (scripts/fuzz.sh). Pinned, built from crates.io.
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "setup: installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
echo "setup: $(cargo fuzz --version)"
