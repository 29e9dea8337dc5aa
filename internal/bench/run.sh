#!/usr/bin/env bash
# The peer benchmark of issue 7 (make bench-peers): builds the harness and,
# if it is not cached yet, Redpanda Connect; starts the broker; runs every
# contender; writes BENCHMARKS.md, BENCHMARKS.json and BENCHMARKS.png at the
# repository root. Arguments go to `meshlet-bench run` (-h lists them).
#
#   MESHLET_BENCH_CACHE  where binaries, Redpanda Connect and run logs live
#                        (default ~/.cache/meshlet-bench; never in the repo)
#   KAFKA_BROKERS        a real cluster instead of kfake
#   SCHEMA_REGISTRY_URL  its registry (default: the embedded one)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${MESHLET_BENCH_CACHE:-$HOME/.cache/meshlet-bench}
SECONDS=0

cd "$repo"
mkdir -p "$cache/bin"
echo "building the harness into $cache/bin" >&2
go build -o "$cache/bin/" ./internal/bench/cmd/...
rpconnect=$("$cache/bin/meshlet-bench" build-rpconnect "$cache/rpconnect")
built=$SECONDS
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	revision="$revision with uncommitted changes"
fi

"$cache/bin/meshlet-bench" run -bin "$cache/bin" -rpconnect "$rpconnect" \
	-work "$cache/work" -out "$repo" -build-seconds "$built" \
	-revision "$revision" "$@"
echo "wrote $repo/BENCHMARKS.md, BENCHMARKS.json and BENCHMARKS.png in ${SECONDS}s" >&2
