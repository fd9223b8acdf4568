#!/usr/bin/env bash
# Builds the seed corpora, fuzz/corpus/<target>/, from the repository's
# fixtures (and ../shared/fixtures when present). OTLP seeds are the native
# fixtures converted by gen-dataset. Files the fuzzer adds later stay.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
corpus=$root/fuzz/corpus
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

# GEN_DATASET: an already built gen-dataset (CI passes the test build's).
gen="${GEN_DATASET:-}"
if [ -z "$gen" ] || [ ! -x "$gen" ]; then
  cargo build -q --release -p perf-sentinel-tests --bin gen-dataset
  gen="$CARGO_TARGET_DIR/release/gen-dataset"
fi

for t in native native_stream jaeger zipkin otlp_json otlp_protobuf sniffed sql_normalizer http_normalizer config; do
  mkdir -p "$corpus/$t"
done

native=(examples/demo-traces.json detectors/tests/fixtures/*/*.json plugins/*/tests/fixtures/*/*.json
        examples/plugin-template/tests/fixtures/*.json)
if [ -d ../shared/fixtures ]; then
  for f in ../shared/fixtures/*.json; do
    case "$f" in
      *jaeger*) cp "$f" "$corpus/jaeger/"; cp "$f" "$corpus/sniffed/" ;;
      *zipkin*) cp "$f" "$corpus/zipkin/"; cp "$f" "$corpus/sniffed/" ;;
      *) native+=("$f") ;;
    esac
  done
fi

i=0
for f in "${native[@]}"; do
  [ -f "$f" ] || continue
  i=$((i + 1))
  cp "$f" "$corpus/native/seed-$i.json"
  cp "$f" "$corpus/native_stream/seed-$i.json"
  cp "$f" "$corpus/sniffed/seed-$i.json"
  "$gen" --convert "$f" --format otlp-json > "$corpus/otlp_json/seed-$i.json"
  "$gen" --convert "$f" --format otlp-protobuf > "$corpus/otlp_protobuf/seed-$i.pb"
  cp "$corpus/otlp_json/seed-$i.json" "$corpus/sniffed/seed-$i.otlp.json"
  cp "$corpus/otlp_protobuf/seed-$i.pb" "$corpus/sniffed/seed-$i.pb"
done

# Normalizer seeds: every SQL text, and every HTTP method and URL, one per file.
python3 - "$corpus" "${native[@]}" <<'PY'
import hashlib, json, os, sys
corpus, files = sys.argv[1], sys.argv[2:]
for f in files:
    if not os.path.isfile(f):
        continue
    for e in json.load(open(f, encoding="utf-8")):
        if not isinstance(e, dict) or not isinstance(e.get("target"), str):
            continue
        if e.get("type") == "sql":
            body, t = e["target"], "sql_normalizer"
        else:
            body, t = f'{e.get("operation", "GET")}\n{e["target"]}', "http_normalizer"
        name = hashlib.sha1(body.encode()).hexdigest()[:16]
        with open(os.path.join(corpus, t, name), "w", encoding="utf-8") as out:
            out.write(body)
PY

cp examples/perf-sentinel.toml "$corpus/config/example.toml"
printf '[thresholds]\nn_plus_one_sql_critical_max = 0\n\n[detection]\nn_plus_one_min_occurrences = 5\n' > "$corpus/config/small.toml"
printf '[daemon]\nlisten_address = "127.0.0.1"\nmax_payload_size = 1048576\n\n[green]\nenabled = true\ndefault_region = "eu-west-3"\n\n[green.service_regions]\n"ledger" = "us-east-1"\n' > "$corpus/config/daemon.toml"
for t in "$corpus"/*; do
  echo "$(basename "$t"): $(find "$t" -type f | wc -l) seeds"
done
