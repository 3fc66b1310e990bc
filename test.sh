#!/usr/bin/env bash
# test.sh runs every check of Tokenlysis: go vet, gofmt and the whole test
# suite against a real Redis and a real PostgreSQL, which it reuses when they
# answer and otherwise starts (installing them with apt if needed) and stops
# at exit.
#
#   ./test.sh                          # everything (what CI runs)
#   ./test.sh -run TestX ./internal/foo/   # extra args go to `go test`
#                                          # instead of ./...
# Environment:
#   TOKENLYSIS_TEST_REDIS_URL      use this Redis (only checked), else 127.0.0.1
#   TOKENLYSIS_TEST_REDIS_PORT     port of the local Redis (default 6379)
#   TOKENLYSIS_TEST_POSTGRES_URL   use this PostgreSQL admin URL (only checked)
#   TOKENLYSIS_TEST_POSTGRES_PORT  port of the local PostgreSQL (default 5432)
#   TOKENLYSIS_TEST_SERVICES_ONLY=1  provision, print the URLs, stop; no Go
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
SVC_TAG="test"
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"

START=$SECONDS
STEP=setup
DONE="vet, gofmt and go test all passed"
TMP=""

on_exit() {
	local rc=$?
	trap - EXIT
	svc_cleanup
	if [[ -n $TMP ]]; then
		rm -rf "$TMP"
	fi
	if ((rc == 0)); then
		printf '[test] PASS: %s (%ds)\n' "$DONE" "$((SECONDS - START))" >&2
	else
		printf '[test] FAIL: %s failed (exit %d, %ds)\n' "$STEP" "$rc" "$((SECONDS - START))" >&2
	fi
	exit "$rc"
}
trap on_exit EXIT

# The Go steps run in the background, each in a process group of its own,
# and the script waits for them: bash runs a trap only once the foreground
# command has ended, so a TERM would wait for the whole test run (up to
# its 45 min timeout) with the services the script started still up. The
# trap ends the step's group (go and the test binaries), then the EXIT
# trap cleans up.
CHILD=""
on_signal() {
	if [[ -n $CHILD ]]; then
		kill -TERM -- "-$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
	fi
	exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# step CMD... runs CMD as described above and returns its status.
step() {
	local rc=0
	set -m
	"$@" &
	CHILD=$!
	set +m
	wait "$CHILD" || rc=$?
	CHILD=""
	return "$rc"
}

STEP="finding Go"
svc_ensure_go

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tokenlysis-test.XXXXXX")
chmod 755 "$TMP"

STEP="providing Redis"
svc_ensure_test_redis "$TMP"
STEP="providing PostgreSQL"
svc_ensure_test_postgres "$TMP"
svc_log "TOKENLYSIS_TEST_REDIS_URL=$(svc_redact "$TOKENLYSIS_TEST_REDIS_URL")"
svc_log "TOKENLYSIS_TEST_POSTGRES_URL=$(svc_redact "$TOKENLYSIS_TEST_POSTGRES_URL")"

if [[ ${TOKENLYSIS_TEST_SERVICES_ONLY:-} == 1 ]]; then
	DONE="Redis and PostgreSQL provided (services only, no Go checks)"
	svc_log "services ready; TOKENLYSIS_TEST_SERVICES_ONLY=1, so no Go checks"
	exit 0
fi

STEP="go vet"
svc_log "go vet ./..."
step go vet ./...

STEP="gofmt"
svc_log "gofmt -l"
unformatted=$(find . \( -path ./.git -o -path ./bin -o -path ./var -o -name testdata -o -name vendor \) -prune \
	-o -type f -name '*.go' -print0 | xargs -0 -r gofmt -l)
if [[ -n $unformatted ]]; then
	svc_err "these files are not gofmt-formatted (run gofmt -w on them):"
	while IFS= read -r f; do printf '  %s\n' "$f" >&2; done <<<"$unformatted"
	exit 1
fi

STEP="go test"
if (($# == 0)); then
	set -- ./...
fi
svc_log "go test -count=1 -timeout 45m $*"
step go test -count=1 -timeout 45m "$@"
STEP="nothing"
