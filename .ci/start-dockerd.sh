#!/usr/bin/env bash
# Starts Debian's dockerd on a private socket for the tests (CI and dev shells alike) and prints
# the `export DOCKER_HOST=...` line to eval:  eval "$(.ci/start-dockerd.sh)"
# Idempotent: when the engine already answers, it only prints the export line.
# Everything it says besides that line goes to stderr, so the eval sees only the export.
set -euo pipefail

sock=/run/labrig-dockerd.sock
host="unix://$sock"
data_root=/var/lib/labrig-docker
exec_root=/run/labrig-docker
log=/var/log/labrig-dockerd.log
pidfile=/run/labrig-dockerd.pid
# Debian's docker.io client; a newer client elsewhere on PATH works too.
docker_cli=$(command -v docker || echo /usr/bin/docker)

answers() { DOCKER_HOST="$host" "$docker_cli" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if ! answers; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "start-dockerd: dockerd is not installed; install Debian's docker.io (see .ci/apt-packages)" >&2
    exit 1
  fi
  mkdir -p "$data_root" "$exec_root"
  # A stale pid file from a killed engine would stop dockerd from starting.
  if [[ -f $pidfile ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
  # setsid + nohup: the engine outlives this script and the shell that eval'ed it.
  setsid nohup dockerd \
    --host "$host" \
    --data-root "$data_root" \
    --exec-root "$exec_root" \
    --pidfile "$pidfile" \
    >>"$log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    answers && break
    sleep 0.5
  done
  if ! answers; then
    echo "start-dockerd: dockerd did not answer on $host within 60 s; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
fi

echo "export DOCKER_HOST=$host"
