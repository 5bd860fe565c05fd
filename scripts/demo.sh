#!/usr/bin/env bash
# The main job on the demo source, end to end, with real parts:
#   demo source (real video files) -> `airflow dags test vidrec_nightly` (SQLite) -> Redis
#   -> the FastAPI service -> one user's list over HTTP, as JSON and with titles
#   -> the loop: the user watches three of them, a refresher rewrites their list within seconds.
# Uses the Redis on 127.0.0.1:6379 when it answers, else starts its own; stops what it started.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export TF_USE_LEGACY_KERAS=1 HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
# `dags test` runs tasks in this process: a failure should end the demo, not wait for retries.
export VIDREC_TASK_RETRIES="${VIDREC_TASK_RETRIES:-0}"

source_dir="$root/var/demo-source"
workdir="$root/var/work"
state="$root/var/state"
run_date="${RUN_DATE:-$(date -u +%F)}"
namespace="${VIDREC_NAMESPACE:-demo}"
port="${VIDREC_API_PORT:-8765}"
user="${DEMO_USER:-u00001}"
redis_url="${VIDREC_REDIS_URL:-redis://127.0.0.1:6379/0}"
vidrec="$root/.venv/bin/vidrec"
t0=$(date +%s)
mkdir -p "$state"

api_pid=""
refresher_pid=""
redis_started="False"
cleanup() {
  [ -n "$refresher_pid" ] && kill "$refresher_pid" 2>/dev/null && wait "$refresher_pid" 2>/dev/null || true
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null || true
  if [ "$redis_started" = "True" ]; then "$vidrec" redis stop --redis-url "$redis_url" --state-dir "$state" >/dev/null; fi
}
trap cleanup EXIT

echo "== 1/7 demo source -> $source_dir"
"$vidrec" demo-data --out "$source_dir" >/dev/null

echo "== 2/7 Redis at $redis_url"
redis_started=$("$vidrec" redis start --redis-url "$redis_url" --state-dir "$state" \
  | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["started"])')
[ "$redis_started" = "True" ] && echo "   started the project's own redis-server" || echo "   using the Redis that answered"

echo "== 3/7 airflow dags test vidrec_nightly $run_date (log: var/demo-airflow.log)"
conf=$(printf '{"source": "%s", "workdir": "%s", "namespace": "%s", "redis_url": "%s"}' \
  "$source_dir" "$workdir" "$namespace" "$redis_url")
if ! scripts/airflow.sh dags test vidrec_nightly "$run_date" --conf "$conf" >var/demo-airflow.log 2>&1; then
  tail -40 var/demo-airflow.log >&2; echo "airflow dags test failed; full log in var/demo-airflow.log" >&2; exit 1
fi
if grep -q "new_state=failed\|state=failed" var/demo-airflow.log; then
  grep -n "failed" var/demo-airflow.log | tail -5 >&2; echo "a DAG task failed; see var/demo-airflow.log" >&2; exit 1
fi
report="$workdir/runs/$run_date/evaluate/report.json"
.venv/bin/python - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"   model {r['model_version']}: protocol {r['protocol']}, {r['users_evaluated']} users evaluated")
for name, m in r["metrics"].items():
    print(f"   {name:<11} recall@10 {m['recall@10']:.3f} ± {m['recall@10_se']:.3f}   ndcg@10 {m['ndcg@10']:.3f} ± {m['ndcg@10_se']:.3f}")
pub = json.load(open(sys.argv[1].replace("/evaluate/report.json", "/publish/summary.json")))
print(f"   publish: {'published ' + pub['version'] if pub.get('published') else 'held back'} ({pub.get('reason')})")
print(f"   report: {sys.argv[1].replace('.json', '.html')}")
PY

echo "== 4/7 API on 127.0.0.1:$port"
VIDREC_REDIS_URL="$redis_url" VIDREC_NAMESPACE="$namespace" VIDREC_MODEL_ROOT="$workdir/models" \
  "$vidrec" serve --host 127.0.0.1 --port "$port" >var/demo-api.log 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$api_pid" 2>/dev/null || { cat var/demo-api.log >&2; exit 1; }
  sleep 0.2
done

echo "== 5/7 GET /v1/users/$user/recommendations?k=10"
curl -sf "http://127.0.0.1:$port/v1/users/$user/recommendations?k=10" | .venv/bin/python -m json.tool
"$vidrec" show --user "$user" --source "$source_dir" --api "http://127.0.0.1:$port" -k 10
echo "== 6/7 the loop: $user watches three of them; the refresher rewrites the list (log: var/demo-refresher.log)"
"$vidrec" refresher --workdir "$workdir" --namespace "$namespace" --redis-url "$redis_url" >var/demo-refresher.log 2>&1 &
refresher_pid=$!
.venv/bin/python - "http://127.0.0.1:$port" "$user" "$redis_url" "$namespace" <<'PY'
import sys, time
import httpx, redis
from cache import keys

api, user, url, ns = sys.argv[1:5]
before = httpx.get(f"{api}/v1/users/{user}/recommendations", params={"k": 10}).json()
watched = [i["video_id"] for i in before["items"][:3]]
by = {"version": before["model_version"], "source": before["source"]}
key = keys.user_key(ns, before["model_version"], user)
client = redis.Redis.from_url(url)
deadline = time.monotonic() + 60  # the refresher reads what is posted after its group exists
def refresher_ready() -> bool:
    try:
        return any(g["name"] == b"vidrec-refresher" for g in client.xinfo_groups(keys.events_stream_key(ns)))
    except redis.ResponseError:  # no stream yet: the refresher creates it with its group
        return False

while not refresher_ready():
    assert time.monotonic() < deadline, "the refresher did not start; see var/demo-refresher.log"
    time.sleep(0.1)
published = client.get(key)
t0 = time.monotonic()
httpx.post(f"{api}/v1/events", json={"events": [{"user_id": user, "video_id": v, "recommended_by": by} for v in watched]}).raise_for_status()
print(f"   posted watches of {watched} (recommended_by {by})")
while client.get(key) == published and time.monotonic() - t0 < 10:
    time.sleep(0.01)
waited = 1000 * (time.monotonic() - t0)
after = httpx.get(f"{api}/v1/users/{user}/recommendations", params={"k": 10}).json()
print(f"   list rewritten by the refresher after {waited:.0f} ms (source {after['source']}):")
print(f"   before: {[i['video_id'] for i in before['items']]}")
print(f"   after:  {[i['video_id'] for i in after['items']]}")
PY
"$vidrec" show --user "$user" --source "$source_dir" --api "http://127.0.0.1:$port" -k 10
echo "   the next nightly ingest lands these watches for training; vidrec report online --since $run_date counts them"
echo "== 7/7 a video uploaded after training: vidrec fresh adds it to the live version (no retraining)"
clip="$root/../shared/data/videos/bikes.mp4"
[ -f "$clip" ] || clip="$(ls "$source_dir"/media/*.mp4 | head -1)"
cp "$clip" "$source_dir/media/fresh-upload.mp4"
echo "fresh-upload,the garlic pasta bake recipe,spicy pasta from the kitchen,recipe|pasta,cooking,10.0,$(date +%s),media/fresh-upload.mp4" >>"$source_dir/videos.csv"
"$vidrec" fresh --source "$source_dir" --workdir "$workdir" --run-date "$run_date" --namespace "$namespace" \
  --redis-url "$redis_url" 2>var/demo-fresh.log | .venv/bin/python -c 'import json,sys; s=json.load(sys.stdin); print(f"   fresh: {s}")'
sleep 1.1  # the API reads the live pointer (and whether it has fresh videos) once a second
curl -sf "http://127.0.0.1:$port/v1/fresh?category=cooking&k=5" | .venv/bin/python -c 'import json,sys; b=json.load(sys.stdin); print("   GET /v1/fresh?category=cooking:", [i["video_id"] for i in b["items"]])'
curl -sf "http://127.0.0.1:$port/v1/users/$user/recommendations?k=10" >var/demo-answer.json
.venv/bin/python - var/demo-answer.json <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
items = [i["video_id"] + (" (fresh)" if i.get("reason") == "fresh" else "") for i in b["items"]]
print(f"   {b['user_id']}'s answer now (source {b['source']}): {items}")
PY
echo "demo finished in $(( $(date +%s) - t0 ))s"
