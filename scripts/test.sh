#!/usr/bin/env bash
# The project's tests: vet, each fuzz target for a short while (FUZZTIME,
# default 10s), then every package's tests. Tests that need root or the
# packages .ci/run installs skip themselves with the reason when those are
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}

go vet ./...
fuzz() { go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "./$1" 2>&1 | grep -v '^fuzz: elapsed'; }
for target in credfile:FuzzParseCIBCredentials credfile:FuzzParseClientKey credfile:FuzzParseAuthkey config:FuzzParse; do
	pkg=${target%%:*} fn=${target#*:}
	echo "fuzz $pkg $fn for $fuzztime"
	if out=$(fuzz "$pkg" "$fn"); then
		printf '%s\n' "$out"
		continue
	fi
	printf '%s\n' "$out"
	# Go's fuzzing engine now and then ends a run with "context deadline
	# exceeded" and no failing input (a worker still busy at the
	# deadline): that run once more. A failing input always fails.
	if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
		echo "fuzz $pkg $fn: the engine stopped at its deadline without a failing input; once more"
		fuzz "$pkg" "$fn"
	else
		exit 1
	fi
done
./scripts/peers.sh # the real Pacemaker 3.0.2 peer for internal/pcmklab: built once per machine (minutes), then cached
./scripts/clusterlab-deps.sh # Debian's pacemaker (Conflicts with pacemaker-remote) unpacked for internal/clusterlab: once per machine, then cached
echo "the test Vault (internal/vaultdev): built once per machine into the cache (about 8 minutes cold on 2 cores), then seconds"
go run ./internal/vaultbuild
# Each package's result, every failure in full, then every skip and why.
go test -json -count=1 -timeout 40m ./... | go run ./internal/testsummary
