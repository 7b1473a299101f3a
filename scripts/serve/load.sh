#!/usr/bin/env bash
# Load on `greenmark serve`, measured with oha (https://github.com/hatoo/oha):
# POST /v1/detect with 1 KB and 10 KB texts at 16 and 128 connections, the server's peak
# memory while under load, and (SOAK=600) a long run that must end without one error.
#
#   cargo install oha --locked            # once
#   cargo build --release -p greenmark-cli
#   bash scripts/serve/load.sh            # DURATION=20s per cell; SOAK=600 for the soak
#
# Figures go to docs/benchmarks.md ("The detection service").
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${GREENMARK_BIN:-${CARGO_TARGET_DIR:-target}/release/greenmark}
OHA=${OHA:-oha}
DURATION=${DURATION:-20s}
SIZES=${SIZES-"1024 10240"}
CONNECTIONS=${CONNECTIONS-"16 128"}
SOAK=${SOAK:-0}
dir=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT

"$BIN" keygen --out "$dir/k.json" >/dev/null
token=load-test-token
cat >"$dir/serve.toml" <<TOML
listen = "127.0.0.1:18181"
tokenizer = "$PWD/crates/greenmark/tests/data/smollm2-tokenizer.json"
keys = ["k.json"]
[[tokens]]
sha256 = "$(printf %s "$token" | sha256sum | cut -c1-64)"
role = "public"
[limits]
request_timeout_secs = 60
TOML
"$BIN" serve --config "$dir/serve.toml" 2>"$dir/serve.log" &
server=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18181/healthz >/dev/null && break; sleep 0.1; done

# Bodies: English prose (the embedded model's unwatermarked answers, as benches/serve.rs
# uses), joined and cut at a word near the size.
python3 - "$dir" $SIZES <<'PY'
import gzip, json, pathlib, sys
corpus = pathlib.Path("scripts/radioactivity/corpus/teacher-plain.jsonl.gz")
prose = " ".join(json.loads(l)["text"] for l in gzip.open(corpus, "rt")).split()
for size in map(int, sys.argv[2:]):
    words, n = [], 0
    for w in prose:
        if n + len(w) + 1 > size:
            break
        words.append(w)
        n += len(w) + 1
    pathlib.Path(sys.argv[1], f"body-{size}.json").write_text(json.dumps({"text": " ".join(words)}))
PY

peak_rss() {  # the server's peak resident memory (kB) while $1 runs
  local peak=0 rss
  while kill -0 "$1" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
    [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 0.2
  done
  echo "$peak"
}

run() {  # size connections duration
  "$OHA" -z "$3" -c "$2" -m POST -H "Authorization: Bearer $token" -T application/json \
    -D "$dir/body-$1.json" --no-tui --output-format json http://127.0.0.1:18181/v1/detect \
    >"$dir/oha-$1-$2.json" &
  local load=$!
  local peak
  peak=$(peak_rss $load)
  wait $load
  python3 - "$dir/oha-$1-$2.json" "$1" "$2" "$peak" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
# Requests still in flight when the duration ends are cut off by oha itself: not failures.
errors = sum(n for e, n in r.get("errorDistribution", {}).items() if "deadline" not in e)
bad = sum(n for c, n in codes.items() if c != "200")
if bad or errors:
    print("failures:", codes, r.get("errorDistribution"), file=sys.stderr)
print(f"| {int(sys.argv[2]) // 1024} KB | {sys.argv[3]} | {s['requestsPerSec']:,.0f} | "
      f"{1000 * p['p50']:.2f} | {1000 * p['p99']:.2f} | {1000 * s['slowest']:.1f} | "
      f"{sum(codes.values()):,} | {bad + errors} | {int(sys.argv[4]) / 1024:.0f} MiB |")
PY
}

echo "| text | connections | requests/s | p50 ms | p99 ms | slowest ms | requests | non-200 or errors | server peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
for size in $SIZES; do
  for c in $CONNECTIONS; do
    run "$size" "$c" "$DURATION"
  done
done
if [ "$SOAK" -gt 0 ]; then
  echo "soak: ${SOAK}s at 64 connections, 1 KB"
  run 1024 64 "${SOAK}s"
fi
echo "idle RSS after load: $(awk '/VmRSS/ {print $2}' /proc/$server/status) kB"
