#!/usr/bin/env bash
# kafka-python and confluent-kafka (librdkafka 2.16) against `kafkit cluster` processes that
# the Python harness starts, restarts and injects faults into.
set -euo pipefail
bin=${1:?usage: interop-python.sh path/to/kafkit}
here=$(cd "$(dirname "$0")" && pwd)
timeout 600 python3 "$here/interop_python.py" "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
