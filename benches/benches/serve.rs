//! The CPU work of one `POST /v1/detect` of text, without the HTTP around it (oha measures
//! that: scripts/serve/load.sh): parse the JSON body, normalize and tokenize the text, score
//! it under the keyring (`text::Query`), and write the record. 1 KB and 10 KB of English
//! prose (the embedded model's unwatermarked answers), one key, the model's tokenizer.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput};
use greenmark::text::{Query, Source, TextDetector};
use greenmark::{Detector, Keyring, WatermarkConfig};
use greenmark_benches::{criterion, key, print_medians};

/// The allocator the `greenmark` binary (and so the service) runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// English prose of about `bytes` bytes, cut at a word: answers of the embedded model
/// without a watermark (the radioactivity corpus, `teacher-plain.jsonl.gz`), joined.
fn prose(bytes: usize) -> String {
    use std::io::BufRead;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/radioactivity/corpus/teacher-plain.jsonl.gz");
    let file = std::fs::File::open(path).expect("the corpus");
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let mut out = String::new();
    for line in lines {
        let record: serde_json::Value = serde_json::from_str(&line.expect("a line")).expect("JSON");
        for word in record["text"].as_str().expect("text").split_whitespace() {
            if out.len() + word.len() + 1 > bytes {
                return out;
            }
            out.push_str(word);
            out.push(' ');
        }
    }
    out
}

fn serve(c: &mut Criterion) -> Vec<(String, u64)> {
    let tokenizer = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/greenmark/tests/data/smollm2-tokenizer.json");
    let config = WatermarkConfig::new(49_152).expect("valid config");
    let text = TextDetector::from_file(&tokenizer, &key(), config.clone()).expect("tokenizer");
    let keyring = Keyring::new(vec![Detector::new(&key(), config)]).expect("keyring");
    let mut group = c.benchmark_group("serve_detect");
    let mut lines = Vec::new();
    for (bytes, label) in [(1024usize, "1KB"), (10 * 1024, "10KB")] {
        let body = serde_json::json!({ "text": prose(bytes) }).to_string();
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(BenchmarkId::new("request", label), |b| {
            b.iter(|| {
                let value: serde_json::Value =
                    serde_json::from_slice(black_box(body.as_bytes())).expect("JSON");
                let input = value["text"].as_str().expect("text");
                let answer = Query::new(Source::Text(input))
                    .score(&keyring, Some(&text))
                    .expect("scored");
                serde_json::to_vec(&answer.to_json(1e-6)).expect("record")
            })
        });
        group.bench_function(BenchmarkId::new("tokenize", label), |b| {
            let input = prose(bytes);
            b.iter(|| text.tokens(black_box(&input)).expect("tokens"))
        });
        lines.push((format!("serve_detect/request/{label}"), 1));
        lines.push((format!("serve_detect/tokenize/{label}"), 1));
    }
    group.finish();
    lines
}

fn main() {
    let mut c = criterion();
    let lines = serve(&mut c);
    c.final_summary();
    print_medians("requests", &lines);
}
