//! The service's own counters, served at `GET /metrics` in Prometheus' text format:
//! requests by route and status, refusals by reason, latency histograms, requests in flight
//! and tokens scored. Labels are the service's fixed routes and error codes only, never a
//! value a caller sent (an unknown path counts as `other`), so the series stay few and no
//! secret or text can reach a scrape.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// One route's latencies.
#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Requests at or below each bound (not cumulative; summed when rendered).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What the answered requests added up to.
#[derive(Debug, Default, Clone)]
struct Tables {
    requests: BTreeMap<(&'static str, u16), u64>,
    rejections: BTreeMap<&'static str, u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

/// The counters of one running service.
#[derive(Debug, Default)]
pub struct Metrics {
    tables: Mutex<Tables>,
    in_flight: AtomicU64,
    tokens_scored: AtomicU64,
    texts_scored: AtomicU64,
}

/// Marks a request in flight until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a request as in flight until the guard is dropped.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Records an answered request: its route (one of the service's), status, the error
    /// code when refused, and how long it took.
    pub fn record(
        &self,
        route: &'static str,
        status: u16,
        rejection: Option<&'static str>,
        elapsed: Duration,
    ) {
        let seconds = elapsed.as_secs_f64();
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        *tables.requests.entry((route, status)).or_default() += 1;
        if let Some(code) = rejection {
            *tables.rejections.entry(code).or_default() += 1;
        }
        let histogram = tables.latency.entry(route).or_default();
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Counts texts scored and their tokens.
    pub fn scored(&self, texts: u64, tokens: u64) {
        self.texts_scored.fetch_add(texts, Ordering::Relaxed);
        self.tokens_scored.fetch_add(tokens, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let tables = self
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        header(
            &mut out,
            "greenmark_requests_total",
            "counter",
            "Requests answered, by route and HTTP status.",
        );
        for ((route, status), n) in &tables.requests {
            let _ = writeln!(
                out,
                "greenmark_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        header(
            &mut out,
            "greenmark_rejections_total",
            "counter",
            "Requests refused, by error code (unauthorized, rate_limited, body_too_large, ...).",
        );
        for (code, n) in &tables.rejections {
            let _ = writeln!(out, "greenmark_rejections_total{{reason=\"{code}\"}} {n}");
        }
        header(
            &mut out,
            "greenmark_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer, by route.",
        );
        for (route, h) in &tables.latency {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(out, "greenmark_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "greenmark_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "greenmark_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "greenmark_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let scalars = [
            (
                "greenmark_requests_in_flight",
                "gauge",
                "Requests being answered now.",
                &self.in_flight,
            ),
            (
                "greenmark_texts_scored_total",
                "counter",
                "Texts scored by /v1/detect.",
                &self.texts_scored,
            ),
            (
                "greenmark_tokens_scored_total",
                "counter",
                "Tokens in the texts scored by /v1/detect.",
                &self.tokens_scored,
            ),
        ];
        for (name, kind, help, value) in scalars {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_add_up() {
        let m = Metrics::default();
        m.record("/v1/detect", 200, None, Duration::from_micros(300));
        m.record("/v1/detect", 200, None, Duration::from_millis(3));
        m.record(
            "/v1/detect",
            429,
            Some("rate_limited"),
            Duration::from_secs(60),
        );
        m.scored(2, 500);
        {
            let _guard = m.start();
            assert!(m.render().contains("greenmark_requests_in_flight 1\n"));
        }
        let text = m.render();
        for line in [
            "greenmark_requests_total{route=\"/v1/detect\",status=\"200\"} 2",
            "greenmark_requests_total{route=\"/v1/detect\",status=\"429\"} 1",
            "greenmark_rejections_total{reason=\"rate_limited\"} 1",
            "greenmark_request_duration_seconds_bucket{route=\"/v1/detect\",le=\"0.0005\"} 1",
            "greenmark_request_duration_seconds_bucket{route=\"/v1/detect\",le=\"0.005\"} 2",
            "greenmark_request_duration_seconds_bucket{route=\"/v1/detect\",le=\"10\"} 2",
            "greenmark_request_duration_seconds_bucket{route=\"/v1/detect\",le=\"+Inf\"} 3",
            "greenmark_request_duration_seconds_count{route=\"/v1/detect\"} 3",
            "greenmark_requests_in_flight 0",
            "greenmark_texts_scored_total 2",
            "greenmark_tokens_scored_total 500",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
