# shellcheck shell=bash
# Shared helpers for the vLLM serving recipes (serve_published.sbatch, serve_single_gpu.sbatch).
# Sourced, never executed. Defines functions only; sourcing it changes nothing else.
#
# Secrets: the server API key is handed to `vllm serve` through the VLLM_API_KEY environment
# variable (vLLM reads it exactly like --api-key), so it never appears in `ps`, in sbatch logs or
# in the commands these helpers print. Nothing here uses `set -x`.

msc_log() { printf '[msc-serve %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
msc_die() { printf '[msc-serve] error: %s\n' "$*" >&2; exit 1; }

# msc_version_ge A B: true when version A >= version B (local "+cu128" suffixes ignored).
msc_version_ge() {
  local a=${1%%+*} b=${2%%+*}
  [ "$(printf '%s\n%s\n' "$b" "$a" | sort -V | head -n1)" = "$b" ]
}

# msc_vllm_version: the vLLM version installed in $VLLM_VENV ("" if it cannot be read).
# Reads package metadata only (importing vllm takes ~15 s and needs a GPU for some calls).
msc_vllm_version() {
  local py=${VLLM_VENV:?}/bin/python
  [ -x "$py" ] || return 0
  "$py" - <<'PY' 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("vllm"))
except m.PackageNotFoundError:
    pass
PY
}

# msc_pooling_args KIND VERSION MODEL: the `vllm serve` flags (one per line) for a pooling model.
#   KIND    embed | rerank
#   VERSION vLLM version ("" = unknown: assume a current vLLM)
#   MODEL   the model id (the original Qwen3-Reranker checkpoints need an architecture override)
# vLLM >= 0.10.1 selects pooling with `--runner pooling` (the task is inferred from the
# architecture); older releases used `--task embed` / `--task score`, which were later removed.
# VLLM_POOLING_STYLE=runner|task|none forces a style.
msc_pooling_args() {
  local kind=$1 version=${2:-} model=${3:-} style=${VLLM_POOLING_STYLE:-}
  case $kind in embed|rerank) ;; *) msc_die "msc_pooling_args: kind must be embed or rerank, got '$kind'" ;; esac
  if [ -z "$style" ]; then
    if [ -z "$version" ] || msc_version_ge "$version" 0.10.1; then style=runner; else style=task; fi
  fi
  case $style in
    runner) printf '%s\n' --runner pooling ;;
    task) if [ "$kind" = embed ]; then printf '%s\n' --task embed; else printf '%s\n' --task score; fi ;;
    none) ;;
    *) msc_die "VLLM_POOLING_STYLE must be runner, task or none, got '$style'" ;;
  esac
  if [ "$kind" = rerank ]; then
    case $model in
      *-seq-cls*) ;;  # already converted to a sequence classifier
      *Qwen3-Reranker*)
        printf '%s\n' --hf-overrides \
          '{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["no", "yes"], "is_original_qwen3_reranker": true}'
        ;;
    esac
  fi
}

# msc_gpu_map LOGICAL: map job-relative GPU indices ("0,1") to the devices SLURM gave this job.
# Without GPU cgroups SLURM may hand out e.g. CUDA_VISIBLE_DEVICES=4,5,6,7; index 0 is then GPU 4.
msc_gpu_map() {
  local logical=$1 i
  local -a avail=() idx=() out=()
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then IFS=, read -r -a avail <<< "$CUDA_VISIBLE_DEVICES"; fi
  IFS=, read -r -a idx <<< "$logical"
  [ "${#idx[@]}" -gt 0 ] || msc_die "empty GPU list"
  for i in "${idx[@]}"; do
    [[ $i =~ ^[0-9]+$ ]] || msc_die "GPU index must be a number, got '$i' (in '$logical')"
    if [ "${#avail[@]}" -gt 0 ]; then
      [ "$i" -lt "${#avail[@]}" ] || msc_die "GPU index $i is outside this job's GPUs (CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES); request more with --gres=gpu:N"
      out+=("${avail[$i]}")
    else
      out+=("$i")
    fi
  done
  (IFS=,; printf '%s\n' "${out[*]}")
}

# msc_check_tp NAME GPUS TP: tensor parallel size must equal the number of GPUs given to a server.
msc_check_tp() {
  local name=$1 gpus=$2 tp=$3 n
  n=$(awk -F, '{print NF}' <<< "$gpus")
  [ "$n" = "$tp" ] || msc_die "$name: tensor parallel size $tp needs $tp GPUs, got '$gpus'"
}

# msc_check_mem_budget NAME:GPUS:FRACTION ...: every fraction in (0, 1) and, on every GPU, the
# fractions of the servers sharing it sum below 1 (vLLM reserves its fraction of the whole GPU
# per server; the rest is CUDA context and the other servers). Prints the budget per GPU.
msc_check_mem_budget() {
  local table ok=1
  table=$(printf '%s\n' "$@" | awk -F: '
    {
      if (NF != 3 || $3 !~ /^[0-9]*\.?[0-9]+$/ || $3 + 0 <= 0 || $3 + 0 >= 1) {
        printf "[msc-serve] error: bad memory fraction for %s: \"%s\" (want a number in (0, 1))\n", $1, $3 > "/dev/stderr"; bad = 1; next
      }
      n = split($2, g, ",")
      for (i = 1; i <= n; i++) {
        sum[g[i]] += $3; who[g[i]] = who[g[i]] (who[g[i]] == "" ? "" : " + ") $1 " " $3
      }
    }
    END {
      for (k in sum) {
        printf "[msc-serve] GPU %s: %s = %.2f\n", k, who[k], sum[k]
        if (sprintf("%.6f", sum[k]) + 0 >= 1) { printf "[msc-serve] error: GPU %s is over-committed: %s = %.2f (must stay below 1)\n", k, who[k], sum[k] > "/dev/stderr"; bad = 1 }
      }
      exit bad
    }') || ok=0
  [ -z "$table" ] || printf '%s\n' "$table" | sort
  [ "$ok" = 1 ] || msc_die "GPU memory fractions do not fit; lower the *_MEM variables"
}

# msc_resolve_vllm: check $VLLM_VENV/bin/vllm exists and set VLLM_BIN.
msc_resolve_vllm() {
  VLLM_BIN=${VLLM_BIN:-$VLLM_VENV/bin/vllm}
  [ -x "$VLLM_BIN" ] || msc_die "no vllm at $VLLM_BIN. Create its own venv once (not the msc venv): python3 -m venv $VLLM_VENV && $VLLM_VENV/bin/pip install vllm  (or set VLLM_VENV / VLLM_BIN)"
}

# msc_server_key_setup: take the server key from VLLM_API_KEY or MSC_API_KEY (never printed).
msc_server_key_setup() {
  if [ -n "${VLLM_API_KEY:-}" ]; then
    export VLLM_API_KEY
    msc_log "API key: set (from VLLM_API_KEY); clients need the same value in MSC_API_KEY"
  elif [ -n "${MSC_API_KEY:-}" ]; then
    export VLLM_API_KEY="$MSC_API_KEY"
    msc_log "API key: set (from MSC_API_KEY)"
  else
    unset VLLM_API_KEY
    msc_log "API key: none (servers accept any client that can reach $VLLM_HOST; set MSC_API_KEY to require one)"
  fi
}

MSC_PIDS=()
MSC_NAMES=()
MSC_URLS=()
MSC_CLEANED=0
MSC_SLEEP_PID=

# msc_start_server NAME GPUS PORT MODEL MEM [extra vllm args...]
# Starts `vllm serve` in its own process group (so cleanup reaches its workers), logging to
# $LOG_DIR/NAME.log, with CUDA_VISIBLE_DEVICES set to the job's devices for GPUS.
msc_start_server() {
  local name=$1 gpus=$2 port=$3 model=$4 mem=$5 phys log
  shift 5
  phys=$(msc_gpu_map "$gpus") || exit 1
  log=$LOG_DIR/$name.log
  local -a cmd=("$VLLM_BIN" serve "$model" --host "$VLLM_HOST" --port "$port" --gpu-memory-utilization "$mem" "$@")
  msc_log "start $name on GPU $gpus (CUDA_VISIBLE_DEVICES=$phys), log $log"
  msc_log "  $(printf '%q ' "${cmd[@]}")"
  local -a launch=()
  if command -v setsid >/dev/null 2>&1; then launch=(setsid); fi
  CUDA_VISIBLE_DEVICES=$phys ${launch[@]+"${launch[@]}"} "${cmd[@]}" >"$log" 2>&1 </dev/null &
  MSC_PIDS+=("$!")
  MSC_NAMES+=("$name")
  MSC_URLS+=("http://$MSC_SERVE_HOST:$port/v1")
}

# msc_url_of NAME: the base URL of a started server.
msc_url_of() {
  local i
  [ "${#MSC_NAMES[@]}" -gt 0 ] || msc_die "no server named $1"
  for i in "${!MSC_NAMES[@]}"; do
    if [ "${MSC_NAMES[$i]}" = "$1" ]; then printf '%s\n' "${MSC_URLS[$i]}"; return 0; fi
  done
  msc_die "no server named $1"
}

# msc_check_alive: exit 1 naming the first server whose process has ended, with its log tail.
msc_check_alive() {
  local i
  [ "${#MSC_PIDS[@]}" -gt 0 ] || return 0
  for i in "${!MSC_PIDS[@]}"; do
    if ! kill -0 "${MSC_PIDS[$i]}" 2>/dev/null; then
      printf '[msc-serve] error: server %s (pid %s) exited; last lines of %s:\n' \
        "${MSC_NAMES[$i]}" "${MSC_PIDS[$i]}" "$LOG_DIR/${MSC_NAMES[$i]}.log" >&2
      tail -n 20 "$LOG_DIR/${MSC_NAMES[$i]}.log" >&2 2>/dev/null || true
      exit 1
    fi
  done
}

# msc_wait_up NAME...: wait until the named servers answer GET /v1/models, failing fast if any
# started server dies; gives up after MSC_STARTUP_TIMEOUT seconds.
msc_wait_up() {
  local -a targets=()
  local n start=$SECONDS
  for n in "$@"; do targets+=("$n=$(msc_url_of "$n")"); done
  while :; do
    msc_check_alive
    # probe with the servers' own key (and no other: OPENAI_API_KEY may be a real OpenAI key)
    if MSC_API_KEY=${VLLM_API_KEY:-} OPENAI_API_KEY='' \
      "$MSC_SLURM_DIR/wait_healthy.sh" --timeout 0 --quiet --log-dir "$LOG_DIR" "${targets[@]}" 2>/dev/null; then
      msc_log "up: $*"
      return 0
    fi
    if [ $((SECONDS - start)) -ge "$MSC_STARTUP_TIMEOUT" ]; then
      MSC_API_KEY=${VLLM_API_KEY:-} OPENAI_API_KEY='' \
        "$MSC_SLURM_DIR/wait_healthy.sh" --timeout 0 --log-dir "$LOG_DIR" "${targets[@]}" || true
      msc_die "servers not up after ${MSC_STARTUP_TIMEOUT}s (MSC_STARTUP_TIMEOUT): $*"
    fi
    msc_sleep "$MSC_POLL"
  done
}

# msc_sleep S: a sleep that a trapped SIGTERM interrupts at once.
msc_sleep() {
  sleep "$1" &
  MSC_SLEEP_PID=$!
  wait "$MSC_SLEEP_PID" 2>/dev/null || true
  MSC_SLEEP_PID=
}

# msc_write_endpoints FILE KEY=VALUE...: write a sourceable env file atomically (never a secret).
msc_write_endpoints() {
  local file=$1 kv tmp
  shift
  mkdir -p "$(dirname -- "$file")"
  tmp=$(mktemp "$file.XXXXXX")
  {
    printf '# written by %s on %s at %s; source it (run_with_servers.sbatch does)\n' \
      "${MSC_RECIPE:-slurm recipe}" "$(hostname)" "$(date -Is)"
    for kv in "$@"; do printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"; done
  } >"$tmp"
  mv -f "$tmp" "$file"
  msc_log "endpoints written to $file"
}

# msc_cleanup: stop every started server (its whole process group): SIGTERM, then SIGKILL after
# MSC_KILL_GRACE seconds. Idempotent; installed as the EXIT trap.
msc_cleanup() {
  [ "$MSC_CLEANED" = 1 ] && return 0
  MSC_CLEANED=1
  [ -n "$MSC_SLEEP_PID" ] && kill "$MSC_SLEEP_PID" 2>/dev/null
  [ "${#MSC_PIDS[@]}" -gt 0 ] || return 0
  msc_log "stopping servers: ${MSC_NAMES[*]}"
  local pid t
  for pid in "${MSC_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for ((t = 0; t < ${MSC_KILL_GRACE:-30} * 5; t++)); do
    local alive=0
    for pid in "${MSC_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${MSC_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      msc_log "pid $pid still alive after ${MSC_KILL_GRACE:-30}s, SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  msc_log "servers stopped"
}

# msc_install_traps: clean up on any exit; SIGTERM (scancel, time limit via --signal) and SIGINT
# turn into an exit so the EXIT trap runs.
msc_install_traps() {
  trap msc_cleanup EXIT
  trap 'msc_log "SIGTERM received"; exit 143' TERM
  trap 'exit 130' INT
  trap 'exit 129' HUP
}

# msc_serve_forever: keep the job alive while the servers run; exit 1 if one of them dies.
msc_serve_forever() {
  msc_log "serving; stop with: scancel ${SLURM_JOB_ID:-<job id>} (or kill $$)"
  while :; do
    msc_sleep "${MSC_MONITOR_INTERVAL:-30}"
    msc_check_alive
  done
}
