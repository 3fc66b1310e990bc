# shellcheck shell=bash
# services.sh provisions what Tokenlysis needs around it: Go on PATH, a Redis
# and a PostgreSQL. It is sourced by test.sh and start.sh (bash, set -euo
# pipefail) and defines functions only; it starts nothing by itself.
#
# Everything a function starts is registered with svc_defer and stopped by
# svc_cleanup, which the caller runs from its EXIT trap. Services that were
# already answering are reused and never stopped or reconfigured.
#
# Set SVC_TAG before sourcing to prefix messages (default "services").

: "${SVC_TAG:=services}"

_svc_deferred=()
_svc_apt_updated=0

# svc_log prints a progress message on stderr.
# A message that cannot be written (nobody reads stderr any more) is dropped
# rather than failing the caller under set -e.
svc_log() { printf '[%s] %s\n' "$SVC_TAG" "$*" >&2 || true; }

# svc_err prints an error message on stderr.
svc_err() { printf '[%s] ERROR: %s\n' "$SVC_TAG" "$*" >&2 || true; }

# svc_die prints an error message and exits 1 (the EXIT trap still runs).
svc_die() {
	svc_err "$*"
	exit 1
}

# svc_defer registers a command (words, quoted safely) to run at svc_cleanup,
# last registered first.
svc_defer() {
	local cmd
	printf -v cmd '%q ' "$@"
	_svc_deferred+=("$cmd")
}

# svc_cleanup runs the deferred commands in reverse order, ignoring failures.
# Safe to call more than once.
svc_cleanup() {
	local i
	for ((i = ${#_svc_deferred[@]} - 1; i >= 0; i--)); do
		eval "${_svc_deferred[i]}" || true
	done
	_svc_deferred=()
}

# svc_ensure_go puts Go on PATH (adding /usr/local/go/bin when go is not
# already there) and fails loudly when there is none.
svc_ensure_go() {
	if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
		PATH="/usr/local/go/bin:$PATH"
		export PATH
	fi
	if ! command -v go >/dev/null 2>&1; then
		svc_die "Go was not found (looked on PATH and in /usr/local/go/bin). Install Go 1.26 or newer from https://go.dev/dl/ into /usr/local/go, or put its bin directory on PATH."
	fi
	svc_log "using $(go version) ($(command -v go))"
}

# svc_can_root succeeds when we are root or passwordless sudo works.
svc_can_root() {
	[[ $EUID -eq 0 ]] || sudo -n true >/dev/null 2>&1
}

# svc_as_root runs a command as root (directly, or with sudo -n).
svc_as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	else
		sudo -n "$@"
	fi
}

# svc_apt_install installs Debian packages non-interactively, running
# apt-get update once per script. It fails with a message saying what to
# install when apt is missing, we cannot become root, or apt fails.
svc_apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		svc_err "apt-get is not available; install these packages yourself: $*"
		return 1
	fi
	if ! svc_can_root; then
		svc_err "installing $* needs root or passwordless sudo; install them yourself: sudo apt-get install -y $*"
		return 1
	fi
	if ((!_svc_apt_updated)); then
		svc_log "apt-get update"
		if ! svc_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2; then
			svc_err "apt-get update failed; install these packages yourself: $*"
			return 1
		fi
		_svc_apt_updated=1
	fi
	svc_log "apt-get install -y $*"
	if ! svc_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null >&2; then
		svc_err "apt-get install $* failed; install them yourself: sudo apt-get install -y $*"
		return 1
	fi
}

# svc_url_parse URL DEFAULT_PORT sets SVC_URL_HOST, SVC_URL_PORT,
# SVC_URL_USER and SVC_URL_PASSWORD (percent-decoded, empty when absent) from
# a scheme://[user[:password]@]host[:port][/...] URL.
svc_url_parse() {
	local url=$1 default_port=$2 userinfo=""
	local re='^[A-Za-z][A-Za-z0-9+.-]*://(([^@/?#]*)@)?(\[[^]/]*\]|[^]:/?#]*)(:([0-9]*))?'
	SVC_URL_HOST="" SVC_URL_PORT=$default_port SVC_URL_USER="" SVC_URL_PASSWORD=""
	if ! [[ $url =~ $re ]]; then
		return 1
	fi
	userinfo=${BASH_REMATCH[2]}
	SVC_URL_HOST=${BASH_REMATCH[3]}
	SVC_URL_HOST=${SVC_URL_HOST#[}
	SVC_URL_HOST=${SVC_URL_HOST%]}
	if [[ -n ${BASH_REMATCH[5]} ]]; then
		SVC_URL_PORT=${BASH_REMATCH[5]}
	fi
	SVC_URL_USER=$(svc_url_unescape "${userinfo%%:*}")
	if [[ $userinfo == *:* ]]; then
		SVC_URL_PASSWORD=$(svc_url_unescape "${userinfo#*:}")
	fi
}

# svc_url_unescape STRING prints STRING with %XX sequences decoded.
svc_url_unescape() {
	local s=${1//\\/\\\\}
	printf '%b' "${s//%/\\x}"
}

# svc_redact URL prints URL with its password replaced by ***, as the Go
# programs' database.MaskURL does: the userinfo ends at the last @ (a
# password may hold @, / or ?), and the value of a query or key/value
# parameter whose key names a password (sslpassword too) or is
# percent-encoded is hidden. It errs on the side of hiding.
svc_redact() {
	local s=$1 scheme rest userinfo query
	if [[ $s == *://* ]]; then
		scheme=${s%%://*}
		rest=${s#*://}
		if [[ $rest == *@* ]]; then
			userinfo=${rest%@*}
			if [[ $userinfo == *:* ]]; then
				rest="${userinfo%%:*}:***@${rest##*@}"
			fi
		fi
		if [[ $rest == *\?* ]]; then
			query=$(sed -E 's/(^|&)([^=&]*(password|%)[^=&]*=)[^&]*/\1\2***/gI' <<<"${rest#*\?}")
			rest="${rest%%\?*}?$query"
		fi
		printf '%s\n' "$scheme://$rest"
		return
	fi
	# A key/value DSN: a quoted value may hold \', an unquoted one ends at
	# white space.
	sed -E "s/(^|[[:space:]])([^=[:space:]]*password[[:space:]]*=[[:space:]]*)('([^'\\\\]|\\\\.)*'|[^[:space:]]*)/\\1\\2***/gI" <<<"$s"
}

# svc_host_is_local succeeds for loopback host names (and an empty host).
svc_host_is_local() {
	case $1 in
	"" | localhost | ::1 | 127.*) return 0 ;;
	*) return 1 ;;
	esac
}

# svc_port_open HOST PORT succeeds when something accepts TCP connections
# there (bounded to 3 s).
svc_port_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# svc_redis_tcp_ping HOST PORT prints the first reply line to PING, without
# needing redis-cli (bounded to 3 s).
svc_redis_tcp_ping() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "PING\r\n" >&3
		IFS= read -r line <&3 || exit 1
		printf "%s\n" "$line"
	' _ "$1" "$2" 2>/dev/null | tr -d '\r'
}

# svc_redis_check URL succeeds when the Redis at URL answers PING with PONG,
# authenticating with the URL's user and password (redis-cli, which does not
# percent-decode -u URLs, gets them decoded through --user and REDISCLI_AUTH).
svc_redis_check() {
	local url=$1 reply=""
	svc_url_parse "$url" 6379 || {
		svc_err "cannot parse Redis URL $url"
		return 1
	}
	if command -v redis-cli >/dev/null 2>&1; then
		local args=(-h "${SVC_URL_HOST:-127.0.0.1}" -p "$SVC_URL_PORT") envs=()
		[[ $url == rediss://* ]] && args+=(--tls)
		[[ -n $SVC_URL_USER ]] && args+=(--user "$SVC_URL_USER")
		[[ -n $SVC_URL_PASSWORD ]] && envs+=("REDISCLI_AUTH=$SVC_URL_PASSWORD")
		reply=$(env -u REDISCLI_AUTH "${envs[@]}" timeout 5 redis-cli "${args[@]}" ping 2>/dev/null </dev/null) || true
	elif [[ -z $SVC_URL_PASSWORD && $url != rediss://* ]]; then
		reply=$(svc_redis_tcp_ping "${SVC_URL_HOST:-127.0.0.1}" "$SVC_URL_PORT") || true
	else
		# No client able to authenticate: settle for "something answers".
		reply=$(svc_redis_tcp_ping "${SVC_URL_HOST:-127.0.0.1}" "$SVC_URL_PORT") || true
		[[ -n $reply ]] && reply=PONG
	fi
	[[ $reply == PONG ]]
}

# svc_wait_redis URL PID SECONDS LOG waits until the Redis we started at URL
# answers; fails early (printing its log) if PID dies.
svc_wait_redis() {
	local url=$1 pid=$2 secs=$3 log=$4 i
	for ((i = 0; i < secs * 5; i++)); do
		if svc_redis_check "$url"; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			svc_err "redis-server (pid $pid) exited before answering; last lines of $log:"
			tail -n 20 "$log" >&2 || true
			return 1
		fi
		sleep 0.2
	done
	svc_err "redis-server (pid $pid) did not answer within ${secs}s; last lines of $log:"
	tail -n 20 "$log" >&2 || true
	return 1
}

# svc_spawn LOG CMD... starts CMD in the background in its own session (so
# a Ctrl-C at the terminal reaches only this script, which then stops it in
# order), stdin from /dev/null, output appended to LOG. Sets SVC_SPAWN_PID.
svc_spawn() {
	local log=$1
	shift
	if command -v setsid >/dev/null 2>&1; then
		# Not a process-group leader here, so setsid execs in place: $! is CMD.
		setsid "$@" >>"$log" 2>&1 </dev/null &
	else
		"$@" >>"$log" 2>&1 </dev/null &
	fi
	SVC_SPAWN_PID=$!
}

# svc_stop_pid PID NAME [SECONDS] sends TERM, waits up to SECONDS (default
# 15) for the process to end, then KILLs it. Reaps it when it is our child.
svc_stop_pid() {
	local pid=$1 name=$2 secs=${3:-15} i
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	svc_log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		svc_err "$name (pid $pid) still running after ${secs}s; sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# svc_ensure_redis_server installs redis-server (and redis-cli) when missing.
svc_ensure_redis_server() {
	command -v redis-server >/dev/null 2>&1 && return 0
	svc_log "redis-server is not installed; installing it with apt"
	svc_apt_install redis-server || return 1
	command -v redis-server >/dev/null 2>&1 || {
		svc_err "redis-server still not found after installing the package"
		return 1
	}
}

# svc_start_redis PORT DIR MODE LOG [PASSWORD] starts a redis-server bound to
# 127.0.0.1:PORT with its data in DIR, registers its stop with svc_defer and
# waits until it answers. MODE is "ephemeral" (nothing on disk) or "durable"
# (AOF, fsync every second). Sets SVC_REDIS_PID.
svc_start_redis() {
	local port=$1 dir=$2 mode=$3 log=$4 password=${5:-}
	local args=(--port "$port" --bind 127.0.0.1 --daemonize no --dir "$dir" --logfile "")
	case $mode in
	ephemeral) args+=(--save '' --appendonly no) ;;
	durable) args+=(--appendonly yes --appendfsync everysec) ;;
	*) svc_die "svc_start_redis: unknown mode $mode" ;;
	esac
	mkdir -p "$dir"
	local conf=() url="redis://127.0.0.1:$port"
	if [[ -n $password ]]; then
		# The password goes in a private config file, not on the command line.
		local esc=${password//\\/\\\\}
		esc=${esc//\"/\\\"}
		(
			umask 077
			printf 'requirepass "%s"\n' "$esc" >"$dir/auth.conf"
		)
		conf=("$dir/auth.conf")
		url="redis://:$(svc_url_escape "$password")@127.0.0.1:$port"
	fi
	svc_log "starting redis-server on 127.0.0.1:$port ($mode, dir $dir, log $log)"
	svc_spawn "$log" redis-server "${conf[@]}" "${args[@]}"
	SVC_REDIS_PID=$SVC_SPAWN_PID
	svc_defer svc_stop_pid "$SVC_REDIS_PID" redis-server 15
	svc_wait_redis "$url" "$SVC_REDIS_PID" 20 "$log" || return 1
	svc_log "redis-server answers on 127.0.0.1:$port (pid $SVC_REDIS_PID)"
}

# svc_url_escape STRING prints STRING percent-encoded for a URL's userinfo.
svc_url_escape() {
	local s=$1 out="" c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~-]) out+=$c ;;
		*) printf -v c '%%%02X' "'$c" && out+=$c ;;
		esac
	done
	printf '%s' "$out"
}

# svc_ensure_test_redis makes a Redis available for the tests and exports
# TOKENLYSIS_TEST_REDIS_URL. If that variable is set it is only checked.
# Otherwise the Redis on 127.0.0.1:$TOKENLYSIS_TEST_REDIS_PORT (default 6379)
# is reused when it answers, or an ephemeral one is started there (installing
# redis-server with apt if needed) and stopped at svc_cleanup. TMP is the
# directory for its files.
svc_ensure_test_redis() {
	local tmp=$1
	if [[ -n ${TOKENLYSIS_TEST_REDIS_URL:-} ]]; then
		svc_redis_check "$TOKENLYSIS_TEST_REDIS_URL" ||
			svc_die "TOKENLYSIS_TEST_REDIS_URL=$(svc_redact "$TOKENLYSIS_TEST_REDIS_URL") does not answer PING"
		svc_log "Redis at TOKENLYSIS_TEST_REDIS_URL answers"
		return 0
	fi
	local port=${TOKENLYSIS_TEST_REDIS_PORT:-6379}
	export TOKENLYSIS_TEST_REDIS_URL="redis://127.0.0.1:$port"
	if svc_port_open 127.0.0.1 "$port"; then
		svc_redis_check "$TOKENLYSIS_TEST_REDIS_URL" ||
			svc_die "something listens on 127.0.0.1:$port but does not answer Redis PING without a password; free the port or set TOKENLYSIS_TEST_REDIS_URL"
		svc_log "reusing the Redis that answers on 127.0.0.1:$port"
		return 0
	fi
	svc_ensure_redis_server || svc_die "cannot provide Redis for the tests: install redis-server (apt-get install -y redis-server) or start one on 127.0.0.1:$port"
	# Debian's package may have started its own server on the default port.
	if svc_port_open 127.0.0.1 "$port" && svc_redis_check "$TOKENLYSIS_TEST_REDIS_URL"; then
		svc_log "reusing the Redis the package started on 127.0.0.1:$port"
		return 0
	fi
	svc_start_redis "$port" "$tmp/redis" ephemeral "$tmp/redis.log" ||
		svc_die "could not start redis-server on 127.0.0.1:$port"
}

# svc_pg_check URL succeeds when PostgreSQL at URL accepts a connection (psql
# when available, which also checks authentication; else pg_isready).
svc_pg_check() {
	local url=$1 bindir=${2:-} psql pgisready
	psql=$(svc_pg_tool psql "$bindir") || psql=""
	if [[ -n $psql ]]; then
		[[ $(PGCONNECT_TIMEOUT=5 timeout 10 "$psql" -XAtq -d "$url" -c 'select 1' 2>/dev/null </dev/null) == 1 ]]
		return
	fi
	pgisready=$(svc_pg_tool pg_isready "$bindir") || pgisready=""
	if [[ -n $pgisready ]]; then
		timeout 10 "$pgisready" -q -d "$url" -t 5 </dev/null
		return
	fi
	svc_url_parse "$url" 5432 && svc_port_open "$SVC_URL_HOST" "$SVC_URL_PORT"
}

# svc_pg_tool NAME [BINDIR] prints the path of a PostgreSQL program: from
# BINDIR, else PATH, else the newest /usr/lib/postgresql/*/bin.
svc_pg_tool() {
	local name=$1 bindir=${2:-} d
	if [[ -n $bindir && -x $bindir/$name ]]; then
		printf '%s\n' "$bindir/$name"
		return 0
	fi
	if command -v "$name" >/dev/null 2>&1; then
		command -v "$name"
		return 0
	fi
	d=$(svc_pg_bindir) || return 1
	[[ -x $d/$name ]] || return 1
	printf '%s\n' "$d/$name"
}

# svc_pg_bindir prints the newest /usr/lib/postgresql/*/bin holding initdb
# and pg_ctl, or the directory of initdb on PATH.
svc_pg_bindir() {
	local d best=""
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x $d/initdb && -x $d/pg_ctl ]] || continue
		if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n 1) == "$d" ]]; then
			best=$d
		fi
	done
	if [[ -z $best ]] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		best=$(dirname "$(readlink -f "$(command -v initdb)")")
	fi
	[[ -n $best ]] || return 1
	printf '%s\n' "$best"
}

# svc_as_postgres runs a command as the postgres user when we are root
# (initdb refuses root), else as ourselves.
svc_as_postgres() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# svc_stop_debian_clusters_on PORT stops clusters that Debian's package
# created and started on PORT (only called right after we installed it).
svc_stop_debian_clusters_on() {
	local port=$1 ver name cport status
	command -v pg_lsclusters >/dev/null 2>&1 || return 0
	while read -r ver name cport status _; do
		if [[ $cport == "$port" && $status == online* ]]; then
			svc_log "stopping the cluster $ver/$name that the postgresql package started on port $port (it does not allow trust logins over TCP)"
			svc_as_root pg_ctlcluster "$ver" "$name" stop || true
		fi
	done < <(pg_lsclusters -h 2>/dev/null)
}

# svc_start_postgres PORT TMP initialises a throw-away cluster (trust auth,
# no fsync) under TMP, starts it on 127.0.0.1:PORT, and registers its stop
# and removal with svc_defer.
svc_start_postgres() {
	local port=$1 tmp=$2 bindir d
	bindir=$(svc_pg_bindir) || svc_die "PostgreSQL server binaries not found"
	if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
		svc_die "initdb refuses to run as root and there is no postgres user; install the postgresql package or start a PostgreSQL on 127.0.0.1:$port"
	fi
	d=$tmp/pg
	mkdir -p "$d"
	if [[ $EUID -eq 0 ]]; then
		chown postgres:postgres "$d"
	fi
	chmod 700 "$d"
	svc_log "initdb (PostgreSQL $("$bindir/initdb" --version | awk '{print $3}')) in $d/data"
	if ! (cd "$d" && svc_as_postgres "$bindir/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >"$d/initdb.log" 2>&1); then
		cat "$d/initdb.log" >&2 || true
		svc_die "initdb failed"
	fi
	svc_defer svc_stop_postgres "$bindir" "$d"
	svc_log "starting PostgreSQL on 127.0.0.1:$port (log $d/log)"
	if ! (cd "$d" && svc_as_postgres "$bindir/pg_ctl" -D "$d/data" -l "$d/log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k '$d' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
		start >/dev/null); then
		tail -n 30 "$d/log" >&2 || true
		svc_die "PostgreSQL did not start on 127.0.0.1:$port"
	fi
}

# svc_stop_postgres BINDIR DIR stops the cluster in DIR/data (fast shutdown,
# bounded) and removes DIR.
svc_stop_postgres() {
	local bindir=$1 d=$2
	if [[ -f $d/data/postmaster.pid ]]; then
		svc_log "stopping PostgreSQL ($d/data)"
		(cd "$d" && svc_as_postgres "$bindir/pg_ctl" -D "$d/data" -m fast -w -t 30 stop >/dev/null 2>&1) ||
			(cd "$d" && svc_as_postgres "$bindir/pg_ctl" -D "$d/data" -m immediate -w -t 10 stop >/dev/null 2>&1) || true
	fi
	rm -rf "$d"
}

# svc_ensure_test_postgres makes a PostgreSQL available for the tests and
# exports TOKENLYSIS_TEST_POSTGRES_URL (the admin URL). If that variable is
# set it is only checked. Otherwise the server on
# 127.0.0.1:$TOKENLYSIS_TEST_POSTGRES_PORT (default 5432) is reused when it
# answers, or a throw-away cluster is started there (installing the
# postgresql package with apt if no server binaries exist).
svc_ensure_test_postgres() {
	local tmp=$1
	if [[ -n ${TOKENLYSIS_TEST_POSTGRES_URL:-} ]]; then
		svc_pg_check "$TOKENLYSIS_TEST_POSTGRES_URL" ||
			svc_die "TOKENLYSIS_TEST_POSTGRES_URL=$(svc_redact "$TOKENLYSIS_TEST_POSTGRES_URL") does not accept connections"
		svc_log "PostgreSQL at TOKENLYSIS_TEST_POSTGRES_URL answers"
		return 0
	fi
	local port=${TOKENLYSIS_TEST_POSTGRES_PORT:-5432}
	export TOKENLYSIS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	if svc_port_open 127.0.0.1 "$port"; then
		svc_pg_check "$TOKENLYSIS_TEST_POSTGRES_URL" ||
			svc_die "something listens on 127.0.0.1:$port but $TOKENLYSIS_TEST_POSTGRES_URL is refused (the tests need user postgres with trust auth over TCP); fix it or set TOKENLYSIS_TEST_POSTGRES_URL"
		svc_log "reusing the PostgreSQL that answers on 127.0.0.1:$port"
		return 0
	fi
	if ! svc_pg_bindir >/dev/null; then
		svc_log "PostgreSQL server binaries not found; installing the postgresql package with apt"
		svc_apt_install postgresql || svc_die "cannot provide PostgreSQL for the tests: install it (apt-get install -y postgresql) or start one on 127.0.0.1:$port with trust auth for user postgres"
		if svc_port_open 127.0.0.1 "$port"; then
			if svc_pg_check "$TOKENLYSIS_TEST_POSTGRES_URL"; then
				svc_log "reusing the PostgreSQL the package started on 127.0.0.1:$port"
				return 0
			fi
			svc_stop_debian_clusters_on "$port"
			local i
			for ((i = 0; i < 50; i++)); do
				svc_port_open 127.0.0.1 "$port" || break
				sleep 0.2
			done
		fi
		svc_pg_bindir >/dev/null || svc_die "PostgreSQL server binaries still not found after installing the package"
	fi
	svc_start_postgres "$port" "$tmp"
	svc_pg_check "$TOKENLYSIS_TEST_POSTGRES_URL" "$(svc_pg_bindir)" ||
		svc_die "the PostgreSQL we started on 127.0.0.1:$port does not accept $TOKENLYSIS_TEST_POSTGRES_URL"
	svc_log "PostgreSQL answers on 127.0.0.1:$port"
}
