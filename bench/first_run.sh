#!/usr/bin/env bash
# Time to the first prediction on a fresh clone: `make run` from nothing (venv, install,
# database, models, serve) until POST /v1/predictions/demand answers 200, as the README's
# newcomer does it. Prints the seconds, the machine's load at start and end, and keeps
# make's output (each line with the seconds since start) in the log.
#
#   bench/first_run.sh [REPO=.] [WORK=/tmp/pamtalk-first-run] [PORT=8799]
#
# The clone gets ../shared beside it (a link to this repository's ../shared), as CI has.
set -u
REPO=$(cd "${1:-.}" && pwd)
WORK=${2:-/tmp/pamtalk-first-run}
PORT=${3:-8799}
LOG="$WORK/make-run.log"
rm -rf "$WORK" && mkdir -p "$WORK"
git clone -q "$REPO" "$WORK/pamtalk"
[ -d "$REPO/../shared" ] && ln -s "$(cd "$REPO/../shared" && pwd)" "$WORK/shared"
cd "$WORK/pamtalk" || exit 1
echo "commit $(git rev-parse --short HEAD); load at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
start=$(date +%s.%N)
(PORT=$PORT make run 2>&1 | while IFS= read -r line; do printf '%5ds %s\n' "$SECONDS" "$line"; done >"$LOG") &
MAKE_PID=$!
token="" result="make run stopped before a prediction (see $LOG)"
while kill -0 "$MAKE_PID" 2>/dev/null; do
  sleep 2
  if [ -z "$token" ]; then
    token=$(curl -s -m 5 -X POST "localhost:$PORT/v1/auth/login" -H 'content-type: application/json' \
      -d '{"email":"buyer1@pamtalk.local","password":"pamtalk-demo"}' | jq -r '.token // empty' 2>/dev/null)
  fi
  [ -n "$token" ] || continue
  code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -X POST "localhost:$PORT/v1/predictions/demand" \
    -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"crop": "cabbage", "region": "jeju", "horizon_days": 7}')
  if [ "$code" = 200 ]; then
    result="first prediction $(echo "$(date +%s.%N) - $start" | bc | cut -d. -f1) s after make run"
    break
  fi
done
echo "$result; load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
fuser -k -TERM "$PORT/tcp" >/dev/null 2>&1  # the server make started
wait "$MAKE_PID" 2>/dev/null
