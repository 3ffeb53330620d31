#!/usr/bin/env bash
# `make test-citus`: install Citus from the shared bundle, start a local 1 + 2 node
# cluster in a temporary directory, run the scale-out tests and the behavioural core
# against its coordinator, then stop the cluster and delete its data.
#
# The bundle is ../shared/citus next to the repository (override with CITUS_DIR); the
# cluster uses ports CITUS_PORT..CITUS_PORT+2 (default 55600). Without the bundle, root
# or PostgreSQL 15.20+, it prints why and exits 0: nothing was tested.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bundle=${CITUS_DIR:-$repo/../shared/citus}
port=${CITUS_PORT:-55600}
skip() { echo "test-citus: skipped: $*"; exit 0; }

[ -f "$bundle/install.sh" ] || skip "no Citus bundle at $bundle (set CITUS_DIR to the folder with install.sh)"
[ "$(id -u)" = 0 ] || skip "installing Citus and running its servers needs root"
out=$(bash "$bundle/install.sh" 2>&1) || skip "cannot install Citus: $out"
echo "test-citus: $out"

data=$(mktemp -d /tmp/durable-citus.XXXXXX)
chmod 755 "$data"  # the servers run as the postgres user
trap 'bash "$bundle/cluster-down.sh" "$data" --purge' EXIT
dsn=$(bash "$bundle/cluster-up.sh" "$port" "$data" | tail -n 1)
psql=/usr/lib/postgresql/15/bin/psql
# Every new schema becomes a distributed schema, placed whole on one worker node.
"$psql" -X -q "$dsn" -c "ALTER DATABASE postgres SET citus.enable_schema_based_sharding = on"
echo "test-citus: cluster up at $dsn (data in $data)"

cd "$repo"
# The behavioural core on the coordinator (each test's schema is distributed): timers,
# signals, children, cancellation. Left out: the one test that expects a runtime to open
# within a 500 ms timer, which a loaded 3-node cluster on 2 cores does not promise.
core="(sleep or signal or child or cancel or parallel or citus) and not memory and not restart_mid_sleep"
DURABLE_CITUS_DSN=$dsn DURABLE_TEST_DSN=$dsn .venv/bin/pytest -q -rP -p no:cacheprovider \
    tests/citus tests/integration/test_waiting.py tests/integration/test_steps.py -k "$core"
# The run archive on a distributed schema: runs moved out of `runs` and back, readers'
# fallback, and retention dropping the archive's day partitions with the history.
DURABLE_CITUS_DSN=$dsn DURABLE_TEST_DSN=$dsn .venv/bin/pytest -q -p no:cacheprovider \
    tests/store/test_pg_archive.py
