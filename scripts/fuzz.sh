#!/usr/bin/env bash
# Fuzz every target in fuzz/ (cargo-fuzz, libFuzzer) for a bounded time each, seeded from real
# files of the repo: key files, their configs, vLLM configs from vLLM's golden cases, SynthID
# configs, token-id JSON Lines. CI runs it after `make test` (.ci/run).
#
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (default 20) each, 2 at a time
#   FUZZ_SECONDS=300 FUZZ_JOBS=1 scripts/fuzz.sh key_file
#
# Stable Rust is enough (measured with rustc 1.95 and cargo-fuzz 0.13.2): cargo-fuzz's default
# AddressSanitizer needs nightly's -Z flags, but with `--sanitizer none` it passes only stable
# flags (SanitizerCoverage instrumentation, `--cfg fuzzing`) and libFuzzer gets full coverage
# feedback (about 110k runs/s on key_file, one core). Rust code here is memory-safe, so the fuzzer
# looks for panics, hangs, memory blow-ups and the assertions in the targets; `--debug-assertions`
# turns integer overflow into a panic it can find. A crash leaves its input in
# fuzz/artifacts/TARGET/ and fails the script; reproduce it with
# `cargo fuzz run -s none -a TARGET fuzz/artifacts/TARGET/crash-...`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(key_file watermark_config vllm_config synthid_config jsonl)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi

# Seeds from real files, rebuilt each run (fuzz/corpus is ignored by git; what libFuzzer adds
# there is kept between local runs).
seeds=fuzz/target/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{key_file,watermark_config,vllm_config,synthid_config,jsonl}
python3 - "$seeds" <<'EOF'
import glob, json, os, sys

out = sys.argv[1]

def put(target, name, text):
    with open(os.path.join(out, target, name), "w") as f:
        f.write(text)

for path in sorted(glob.glob("scripts/radioactivity/corpus/keys/*.json")):
    text = open(path).read()
    name = os.path.basename(path)
    put("key_file", name, text)
    put("key_file", "hex-" + name, json.loads(text)["secret"] + "\n")
    put("watermark_config", name, json.dumps(json.loads(text)["config"]))

goldens = json.load(open("crates/greenmark/tests/vectors/vllm-watermarking-goldens.json"))
for case in goldens["cases"][:12]:
    config = {
        "key": case["key"],
        "algorithm": case["scheme"],
        "alpha": case["gen_alpha"],
        "context_width": case["context_width"],
        "deduplicate_contexts": case["gen_dedup"],
        "deduplicate_contexts_max_history": case["max_history"],
        "prf": "philox",
    }
    put("vllm_config", case["id"] + ".json", json.dumps(config))
    put("jsonl", case["id"] + ".jsonl", json.dumps({"token_ids": case["generated"], "prompt_ids": case["prompt"]}) + "\n" + json.dumps(case["generated"]) + "\n")

# transformers' SynthIDTextWatermarkingConfig(...).to_dict(), as its docs and our tests use it.
for i, keys in enumerate([[654, 400, 836, 123, 340, 443, 597, 160, 57], [5, 77, 1000003]]):
    put("synthid_config", f"synthid-{i}.json", json.dumps({
        "ngram_len": 5 - i, "keys": keys, "sampling_table_size": 65536, "sampling_table_seed": 0,
        "context_history_size": 1024, "skip_first_ngram_calls": False, "debug_mode": False,
    }))
# Inputs that once failed (fuzz/regressions/TARGET-*), so they are checked every run.
for path in sorted(glob.glob("fuzz/regressions/*")):
    target, name = os.path.basename(path).split("-", 1)
    put(target, "regression-" + name, open(path).read())
put("jsonl", "text.jsonl", json.dumps({"id": 1, "text": "The history of the bicycle"}) + "\n\n{\"id\": 2}\n")
EOF

start=$(date +%s)
# Build every target at once (cargo compiles them in parallel), then fuzz FUZZ_JOBS (default 2,
# one per core of a CI runner) targets at a time: libFuzzer runs on one core each.
echo "== building the fuzz targets"
cargo fuzz build --sanitizer none --release --debug-assertions
built=$(date +%s)

fuzz_one() {
    local target=$1 log="fuzz/target/fuzz-$1.log"
    mkdir -p "fuzz/corpus/$target"
    # -rss_limit_mb: a bounded reader must stay small; -timeout: no single input may take 10 s.
    if ! cargo fuzz run --sanitizer none --release --debug-assertions "$target" \
        "fuzz/corpus/$target" "$seeds/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz $target FAILED: the input is in fuzz/artifacts/$target/"
        return 1
    fi
    echo "== fuzz $target (${seconds} s): $(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log" | sed 's/stat:://; s/  */ /g' | paste -sd, -)"
}

jobs=${FUZZ_JOBS:-2}
status=0
set -- "${targets[@]}"
while [ $# -gt 0 ]; do
    n=$(( $# < jobs ? $# : jobs ))
    pids=()
    for target in "${@:1:$n}"; do
        fuzz_one "$target" &
        pids+=($!)
    done
    shift "$n"
    for pid in "${pids[@]}"; do
        wait "$pid" || status=1
    done
done
echo "== fuzz: building took $(( built - start )) s, fuzzing $(( $(date +%s) - built )) s"
exit "$status"
