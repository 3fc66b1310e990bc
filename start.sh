#!/usr/bin/env bash
# start.sh builds Tokenlysis and runs it on its embedded default: a SQLite
# file database and local disk under $TOKENLYSIS_DATA_DIR, and a local Redis
# (reused when one answers, else started here, installed with apt if
# missing). It migrates the database, starts the worker and the API, waits
# until /readyz answers, then supervises both until Ctrl-C, TERM or HUP (the
# terminal closing), and then stops them.
#
# Every TOKENLYSIS_* variable is passed through to the programs; this script
# itself reads:
#   TOKENLYSIS_DATA_DIR              data directory (default ./var)
#   TOKENLYSIS_REDIS_URL             (default redis://127.0.0.1:6379/0)
#   TOKENLYSIS_DATABASE_URL          (default sqlite:///<abs data dir>/tokenlysis.db)
#   TOKENLYSIS_MIGRATE_DATABASE_URL  (default TOKENLYSIS_DATABASE_URL)
#   TOKENLYSIS_HTTP_ADDR             where the API listens (default 127.0.0.1:8000)
#   TOKENLYSIS_SHUTDOWN_TIMEOUT      how long api/worker may take to stop (default 30s)
#   TOKENLYSIS_START_TIMEOUT         seconds to wait for /readyz (default 90)
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
SVC_TAG="start"
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"

API_PID=""
WORKER_PID=""
REDIS_PID=""
RUNNING=0 # 1 once the system answered /readyz

# stop_all stops the API first (no new jobs), then the worker, then the
# Redis this script started. Idempotent.
stop_all() {
	if [[ -n $API_PID ]]; then
		svc_stop_pid "$API_PID" api "$STOP_SECS"
		API_PID=""
	fi
	if [[ -n $WORKER_PID ]]; then
		svc_stop_pid "$WORKER_PID" worker "$STOP_SECS"
		WORKER_PID=""
	fi
	svc_cleanup
	REDIS_PID=""
}

on_exit() {
	local rc=$?
	trap - EXIT INT TERM HUP
	stop_all
	exit "$rc"
}

on_signal() {
	local sig=$1
	trap - INT TERM HUP
	svc_log "got SIG$sig; shutting down"
	stop_all
	if ((RUNNING)); then
		svc_log "stopped"
		exit 0
	fi
	case $sig in
	INT) exit 130 ;;
	HUP) exit 129 ;;
	esac
	exit 143
}

STOP_SECS=35
# The reader of this script's output may go away first (./start.sh | tee
# run.log, where Ctrl-C ends tee too; a closed terminal): a message written
# then must fail (and be dropped), not kill the script with SIGPIPE before
# it has stopped what it started. The Go programs and redis-server handle
# SIGPIPE themselves and write to their log files.
trap '' PIPE
trap on_exit EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP # the terminal closed

# duration_secs turns a Go duration (30s, 1.5m, 1h2m3.5s, 250ms, 0) into
# whole seconds, rounded up; prints nothing when it cannot (the programs
# then refuse the value themselves).
duration_secs() {
	awk -v d="$1" 'BEGIN {
		if (d == "") exit
		if (d == "0") { print 0; exit }
		total = 0
		while (d != "") {
			if (!match(d, /^([0-9]+\.?[0-9]*|\.[0-9]+)/)) exit
			n = substr(d, 1, RLENGTH) + 0; d = substr(d, RLENGTH + 1)
			if (d ~ /^ns/) { f = 1e-9; d = substr(d, 3) }
			else if (d ~ /^us/) { f = 1e-6; d = substr(d, 3) }
			else if (index(d, "µs") == 1 || index(d, "μs") == 1) { f = 1e-6; d = substr(d, length("µs") + 1) }
			else if (d ~ /^ms/) { f = 1e-3; d = substr(d, 3) }
			else if (d ~ /^s/) { f = 1; d = substr(d, 2) }
			else if (d ~ /^m/) { f = 60; d = substr(d, 2) }
			else if (d ~ /^h/) { f = 3600; d = substr(d, 2) }
			else exit
			total += n * f
		}
		secs = int(total); if (secs < total) secs++
		print secs
	}'
}

shutdown_secs=$(duration_secs "${TOKENLYSIS_SHUTDOWN_TIMEOUT:-30s}")
STOP_SECS=$((${shutdown_secs:-30} + 5))

svc_ensure_go

# --- configuration ----------------------------------------------------------
export TOKENLYSIS_DATA_DIR=${TOKENLYSIS_DATA_DIR:-./var}
mkdir -p "$TOKENLYSIS_DATA_DIR"
TOKENLYSIS_DATA_DIR=$(cd "$TOKENLYSIS_DATA_DIR" && pwd)
LOG_DIR=$TOKENLYSIS_DATA_DIR/logs
mkdir -p "$LOG_DIR"

export TOKENLYSIS_REDIS_URL=${TOKENLYSIS_REDIS_URL:-redis://127.0.0.1:6379/0}
export TOKENLYSIS_HTTP_ADDR=${TOKENLYSIS_HTTP_ADDR:-127.0.0.1:8000}
if [[ -z ${TOKENLYSIS_MIGRATE_DATABASE_URL:-} ]]; then
	# %, ? and # in the data directory are escaped, as database.SQLiteURL does.
	db_path=$TOKENLYSIS_DATA_DIR/tokenlysis.db
	db_path=${db_path//\%/%25}
	db_path=${db_path//\?/%3F}
	db_path=${db_path//\#/%23}
	TOKENLYSIS_MIGRATE_DATABASE_URL=${TOKENLYSIS_DATABASE_URL:-sqlite:///$db_path}
fi
export TOKENLYSIS_MIGRATE_DATABASE_URL
export TOKENLYSIS_DATABASE_URL=${TOKENLYSIS_DATABASE_URL:-$TOKENLYSIS_MIGRATE_DATABASE_URL}
START_TIMEOUT=${TOKENLYSIS_START_TIMEOUT:-90}
[[ $START_TIMEOUT =~ ^[0-9]+$ ]] || svc_die "TOKENLYSIS_START_TIMEOUT must be a number of seconds, got $START_TIMEOUT"

# HTTP host and port the readiness probe and the printed URLs use.
http_host=${TOKENLYSIS_HTTP_ADDR%:*}
http_port=${TOKENLYSIS_HTTP_ADDR##*:}
http_host=${http_host#[}
http_host=${http_host%]}
case $http_host in
"" | 0.0.0.0 | :: | "[::]") http_host=127.0.0.1 ;;
esac
[[ $http_port =~ ^[0-9]+$ ]] || svc_die "TOKENLYSIS_HTTP_ADDR must be host:port, got $TOKENLYSIS_HTTP_ADDR"
if [[ $http_host == *:* ]]; then
	BASE_URL="http://[$http_host]:$http_port"
else
	BASE_URL="http://$http_host:$http_port"
fi

if svc_port_open "$http_host" "$http_port"; then
	svc_die "something already listens on $http_host:$http_port (TOKENLYSIS_HTTP_ADDR); stop it or choose another address"
fi

# --- build ------------------------------------------------------------------
svc_log "building bin/api, bin/worker, bin/migrate"
mkdir -p bin
go build -o bin/ ./cmd/... || svc_die "go build ./cmd/... failed"
for b in api worker migrate; do
	[[ -x bin/$b ]] || svc_die "go build did not produce bin/$b"
done

# --- Redis ------------------------------------------------------------------
redis_url=$TOKENLYSIS_REDIS_URL
svc_url_parse "$redis_url" 6379 || svc_die "TOKENLYSIS_REDIS_URL is not a redis:// URL: $redis_url"
redis_host=$SVC_URL_HOST redis_port=$SVC_URL_PORT redis_password=$SVC_URL_PASSWORD
redis_mode=${TOKENLYSIS_REDIS_MODE:-single}
if [[ $redis_mode != single ]]; then
	# A Sentinel or a Cluster is the operator's: the programs check it.
	svc_log "using the Redis $redis_mode at $(svc_redact "$redis_url") (TOKENLYSIS_REDIS_MODE=$redis_mode)"
elif svc_port_open "${redis_host:-127.0.0.1}" "$redis_port"; then
	svc_redis_check "$redis_url" ||
		svc_die "something listens on $redis_host:$redis_port but does not answer PING with the credentials of TOKENLYSIS_REDIS_URL"
	svc_log "using the Redis that answers at $redis_host:$redis_port"
elif ! svc_host_is_local "$redis_host"; then
	svc_die "no Redis answers at $redis_host:$redis_port (TOKENLYSIS_REDIS_URL); start it, or unset TOKENLYSIS_REDIS_URL to use a local one"
elif [[ $redis_url == rediss://* ]]; then
	svc_die "no Redis answers at $redis_host:$redis_port and this script only starts plain (non-TLS) Redis; start it yourself"
else
	svc_ensure_redis_server || svc_die "Redis is needed: install it (sudo apt-get install -y redis-server) or point TOKENLYSIS_REDIS_URL at one"
	if svc_port_open 127.0.0.1 "$redis_port" && svc_redis_check "$redis_url"; then
		svc_log "using the Redis the redis-server package started on port $redis_port"
	else
		[[ -f $LOG_DIR/redis.log ]] && mv -f "$LOG_DIR/redis.log" "$LOG_DIR/redis.log.1"
		svc_start_redis "$redis_port" "$TOKENLYSIS_DATA_DIR/redis" durable "$LOG_DIR/redis.log" "$redis_password" ||
			svc_die "could not start redis-server on 127.0.0.1:$redis_port"
		REDIS_PID=$SVC_REDIS_PID
	fi
fi

# --- migrations -------------------------------------------------------------
svc_log "bin/migrate up (TOKENLYSIS_MIGRATE_DATABASE_URL=$(svc_redact "$TOKENLYSIS_MIGRATE_DATABASE_URL"))"
bin/migrate up </dev/null || svc_die "bin/migrate up failed (exit $?); nothing was started"

# --- API and worker ---------------------------------------------------------
for name in worker api; do
	[[ -f $LOG_DIR/$name.log ]] && mv -f "$LOG_DIR/$name.log" "$LOG_DIR/$name.log.1"
	: >"$LOG_DIR/$name.log"
done
svc_spawn "$LOG_DIR/worker.log" "$ROOT/bin/worker"
WORKER_PID=$SVC_SPAWN_PID
svc_log "worker started (pid $WORKER_PID, log $LOG_DIR/worker.log)"
svc_spawn "$LOG_DIR/api.log" "$ROOT/bin/api"
API_PID=$SVC_SPAWN_PID
svc_log "api started (pid $API_PID, log $LOG_DIR/api.log)"

# http_status URL prints the HTTP status code of a GET (bounded to 3 s),
# with curl when present, else over bash's /dev/tcp.
http_status() {
	if command -v curl >/dev/null 2>&1; then
		curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" 2>/dev/null || true
		return 0
	fi
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n" "$3" "$1" "$2" >&3
		IFS=" " read -r _ code _ <&3 && printf "%s" "$code"
	' _ "$http_host" "$http_port" "${1#"$BASE_URL"}" 2>/dev/null || true
}

# check_alive NAME PID: if the process has ended, report it with its log
# tail, stop everything and exit 1.
check_alive() {
	local name=$1 pid=$2 rc=0 log
	[[ -n $pid ]] || return 0
	kill -0 "$pid" 2>/dev/null && return 0
	wait "$pid" 2>/dev/null || rc=$?
	case $name in
	api) API_PID="" ;;
	worker) WORKER_PID="" ;;
	esac
	log=$LOG_DIR/$name.log
	[[ $name == redis-server ]] && log=$LOG_DIR/redis.log
	svc_err "$name (pid $pid) exited unexpectedly with status $rc; last lines of $log:"
	tail -n 40 "$log" >&2 || true
	stop_all
	exit 1
}

svc_log "waiting up to ${START_TIMEOUT}s for $BASE_URL/readyz"
deadline=$((SECONDS + START_TIMEOUT))
while :; do
	check_alive worker "$WORKER_PID"
	check_alive api "$API_PID"
	[[ $(http_status "$BASE_URL/readyz") == 200 ]] && break
	if ((SECONDS >= deadline)); then
		svc_err "$BASE_URL/readyz did not answer 200 within ${START_TIMEOUT}s; last lines of the logs:"
		tail -n 20 "$LOG_DIR/api.log" "$LOG_DIR/worker.log" >&2 || true
		exit 1
	fi
	sleep 0.5
done
RUNNING=1

# bin/api token must see the configuration the API runs with (the dev key
# lives in the data dir; the issuer is the HTTP address): repeat what is not
# the default.
token_env=""
if [[ $TOKENLYSIS_DATA_DIR != "$ROOT/var" ]]; then
	token_env+="TOKENLYSIS_DATA_DIR=$(printf '%q' "$TOKENLYSIS_DATA_DIR") "
fi
if [[ $TOKENLYSIS_HTTP_ADDR != 127.0.0.1:8000 ]]; then
	token_env+="TOKENLYSIS_HTTP_ADDR=$(printf '%q' "$TOKENLYSIS_HTTP_ADDR") "
fi
for v in TOKENLYSIS_ENV TOKENLYSIS_AUTH_MODE TOKENLYSIS_OIDC_ISSUER TOKENLYSIS_OIDC_AUDIENCE; do
	if [[ -n ${!v:-} ]]; then
		token_env+="$v=$(printf '%q' "${!v}") "
	fi
done
cat <<EOF

Tokenlysis is running at $BASE_URL  (readyz: $BASE_URL/readyz)
  logs:     $LOG_DIR/api.log, $LOG_DIR/worker.log
  database: $(svc_redact "$TOKENLYSIS_DATABASE_URL")
  redis:    $(svc_redact "$TOKENLYSIS_REDIS_URL")

Get a dev token (from $ROOT, in another terminal):
  TOKEN=\$(${token_env}./bin/api token --role admin --subject alice)

Submit a job, then follow its events (use the "id" of the reply):
  curl -sS -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"type":"system:probe","params":{"steps":5,"step_ms":500}}' $BASE_URL/api/jobs
  curl -N -H "Authorization: Bearer \$TOKEN" $BASE_URL/api/jobs/<id>/events

Press Ctrl-C to stop.
EOF

# --- supervise --------------------------------------------------------------
while :; do
	check_alive api "$API_PID"
	check_alive worker "$WORKER_PID"
	check_alive redis-server "$REDIS_PID"
	# A background sleep lets the INT/TERM trap run at once.
	sleep 1 &
	wait $! || true
done
