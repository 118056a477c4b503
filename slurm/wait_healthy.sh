#!/usr/bin/env bash
# Wait until OpenAI-compatible servers (vllm serve) answer GET <base_url>/models with HTTP 200.
#
#   wait_healthy.sh URL|NAME=URL [URL|NAME=URL ...] [--timeout S] [options]
#
# URL is the OpenAI base URL ending in /v1 (http://node:8001/v1). NAME=URL gives the server a
# name; with --log-dir the failure message then points at DIR/NAME.log (the serve recipes log
# there).
#
# Options:
#   --timeout S    give up after S seconds (default $MSC_HEALTH_TIMEOUT or 900); 0 = one round
#   --interval S   pause between rounds (default $MSC_HEALTH_INTERVAL or 2; decimals allowed)
#   --log-dir DIR  where the servers' logs are (default $MSC_LOG_DIR), for the failure hint
#   --quiet        print nothing on success
#
# Exit status: 0 all up; 1 some server not up before the timeout (one line on stderr names each
# one, its last error and its log); 2 usage error.
# Auth: sends "Authorization: Bearer <key>" with the key from MSC_API_KEY, else OPENAI_API_KEY,
# if set. The key goes to curl on its stdin (never on a command line) and is never printed.
# HTTP client: curl if installed, else python3's urllib (MSC_HEALTH_CLIENT=curl|python forces one).
set -uo pipefail

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
fail_usage() { echo "wait_healthy: $*" >&2; echo "usage: wait_healthy.sh URL|NAME=URL [URL|NAME=URL ...] [--timeout S] [--interval S] [--log-dir DIR] [--quiet]" >&2; exit 2; }

timeout=${MSC_HEALTH_TIMEOUT:-900}
interval=${MSC_HEALTH_INTERVAL:-2}
log_dir=${MSC_LOG_DIR:-}
quiet=0
names=()
urls=()

add_target() {
  local arg=$1 name="" url=$1
  if [[ $arg =~ ^([A-Za-z0-9_.+-]+)=(.+)$ ]]; then name=${BASH_REMATCH[1]}; url=${BASH_REMATCH[2]}; fi
  [[ $url =~ ^https?://[^[:space:]]+$ ]] || fail_usage "not an http(s) URL: '$url'"
  url=${url%/}
  names+=("${name:-$url}")
  urls+=("$url")
}
# options may come before or after the URLs
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) [ $# -ge 2 ] || fail_usage "--timeout needs a value"; timeout=$2; shift 2 ;;
    --timeout=*) timeout=${1#*=}; shift ;;
    --interval) [ $# -ge 2 ] || fail_usage "--interval needs a value"; interval=$2; shift 2 ;;
    --interval=*) interval=${1#*=}; shift ;;
    --log-dir) [ $# -ge 2 ] || fail_usage "--log-dir needs a value"; log_dir=$2; shift 2 ;;
    --log-dir=*) log_dir=${1#*=}; shift ;;
    --quiet|-q) quiet=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; for a in "$@"; do add_target "$a"; done; break ;;
    -*) fail_usage "unknown option $1" ;;
    *) add_target "$1"; shift ;;
  esac
done
[ "${#urls[@]}" -gt 0 ] || fail_usage "no server URL given"
[[ $timeout =~ ^[0-9]*\.?[0-9]+$ ]] || fail_usage "--timeout must be a number of seconds, got '$timeout'"
[[ $interval =~ ^[0-9]*\.?[0-9]+$ ]] || fail_usage "--interval must be a number of seconds, got '$interval'"

client=${MSC_HEALTH_CLIENT:-auto}
case $client in
  auto) if command -v curl >/dev/null 2>&1; then client=curl; else client=python; fi ;;
  curl|python) ;;
  *) fail_usage "MSC_HEALTH_CLIENT must be curl, python or auto, got '$client'" ;;
esac
if [ "$client" = python ]; then
  PYTHON=$(command -v python3 || command -v python || true)
  [ -n "$PYTHON" ] || { echo "wait_healthy: neither curl nor python3 found" >&2; exit 2; }
fi

_auth_key=${MSC_API_KEY:-${OPENAI_API_KEY:-}}
errfile=$(mktemp "${TMPDIR:-/tmp}/wait_healthy.XXXXXX")
trap 'rm -f "$errfile"' EXIT

# probe URL MAXTIME: prints "<http code> <reason>" (code 000 when no HTTP answer came back).
probe() {
  local url=$1/models maxtime=$2 code reason
  if [ "$client" = curl ]; then
    local -a args=(-sS -o /dev/null -w '%{http_code}' --connect-timeout "$maxtime" --max-time "$maxtime")
    if [ -n "$_auth_key" ]; then
      # the header travels in a config file read from stdin: not visible in ps, not printed
      code=$(curl "${args[@]}" -K - "$url" 2>"$errfile" <<<"header = \"Authorization: Bearer ${_auth_key//\"/\\\"}\"")
    else
      code=$(curl "${args[@]}" "$url" 2>"$errfile" </dev/null)
    fi
    reason=$(head -n1 "$errfile" | sed -e 's/^curl: ([0-9]*) //')
    printf '%s %s\n' "${code:-000}" "$reason"
  else
    "$PYTHON" - "$url" "$maxtime" <<'PY'
import os, sys, urllib.error, urllib.request
url, maxtime = sys.argv[1], float(sys.argv[2])
req = urllib.request.Request(url)
key = os.environ.get("MSC_API_KEY") or os.environ.get("OPENAI_API_KEY")
if key:
    req.add_header("Authorization", f"Bearer {key}")
try:
    with urllib.request.urlopen(req, timeout=maxtime) as r:
        print(r.status, "")
except urllib.error.HTTPError as e:
    print(e.code, "")
except (urllib.error.URLError, OSError) as e:
    reason = getattr(e, "reason", e)
    print("000", str(reason).splitlines()[0] if str(reason) else type(e).__name__)
PY
  fi
}

describe() {  # describe CODE REASON
  case $1 in
    000) printf '%s' "${2:-no answer}" ;;
    401|403) printf 'HTTP %s (API key missing or wrong: set MSC_API_KEY to the servers'"'"' key)' "$1" ;;
    404) printf 'HTTP 404 (is the URL the OpenAI base URL ending in /v1?)' ;;
    *) printf 'HTTP %s' "$1" ;;
  esac
}

log_hint() {  # log_hint NAME
  if [ -n "$log_dir" ] && [ "$1" != "${1#http}" ]; then printf 'see the logs in %s' "$log_dir"
  elif [ -n "$log_dir" ]; then printf 'see %s/%s.log' "$log_dir" "$1"
  else printf "check that server's vllm serve log"; fi
}

# milliseconds on a monotonic-enough wall clock (bash's $SECONDS ticks in whole seconds)
now_ms() {
  if [ -n "${EPOCHREALTIME:-}" ]; then
    local t=${EPOCHREALTIME/[.,]/}
    printf '%s\n' $((10#$t / 1000))
  else
    date +%s%3N
  fi
}
timeout_ms=$(awk -v t="$timeout" 'BEGIN { printf "%d", t * 1000 }')
start=$(now_ms)
elapsed_ms() { printf '%s\n' $(($(now_ms) - start)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
pending=("${!urls[@]}")
declare -A last
while :; do
  still=()
  for i in "${pending[@]}"; do
    left=$(( (timeout_ms - $(elapsed_ms)) / 1000 ))
    maxtime=5
    [ "$left" -lt "$maxtime" ] && maxtime=$((left > 1 ? left : 1))
    read -r code reason < <(probe "${urls[$i]}" "$maxtime")
    if [ "$code" = 200 ]; then
      [ "$quiet" = 1 ] || echo "wait_healthy: ${names[$i]} up (${urls[$i]}, $(secs "$(elapsed_ms)")s)"
    else
      last[$i]=$(describe "$code" "$reason")
      still+=("$i")
    fi
  done
  if [ "${#still[@]}" -eq 0 ]; then
    [ "$quiet" = 1 ] || echo "wait_healthy: all ${#urls[@]} server(s) up after $(secs "$(elapsed_ms)")s"
    exit 0
  fi
  pending=("${still[@]}")
  if [ "$(elapsed_ms)" -ge "$timeout_ms" ]; then
    msg=""
    for i in "${pending[@]}"; do
      what=${names[$i]}
      [ "$what" = "${urls[$i]}" ] || what="$what ${urls[$i]}"
      msg+="${msg:+; }$what (GET /models: ${last[$i]}; $(log_hint "${names[$i]}"))"
    done
    echo "wait_healthy: NOT UP after $(secs "$(elapsed_ms)")s (timeout ${timeout}s): $msg" >&2
    exit 1
  fi
  # never sleep past the deadline
  nap=$(awk -v i="$interval" -v left="$((timeout_ms - $(elapsed_ms)))" 'BEGIN { l = left / 1000; printf "%.3f", (i < l ? i : (l > 0 ? l : 0)) }')
  sleep "$nap"
done
