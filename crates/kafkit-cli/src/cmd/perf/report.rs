//! Results of a perf run: counts, latency histogram (HdrHistogram, microseconds), a per-second
//! timeline, printing like kafka-producer-perf-test, JSON, and an SVG plot.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies recorded from any thread: the whole run and the current one-second window.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderInner>>,
}

struct RecorderInner {
    start: Instant,
    all: Histogram<u64>,
    window: Histogram<u64>,
    window_start: Duration,
    timeline: Vec<Window>,
}

/// Latency percentiles of one second of the run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Seconds since the start of the run (window start).
    pub at: f64,
    /// Median, µs.
    pub p50: u64,
    /// 99th percentile, µs.
    pub p99: u64,
    /// Largest, µs.
    pub max: u64,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Self {
            inner: Arc::new(Mutex::new(RecorderInner {
                start,
                all: histogram(),
                window: histogram(),
                window_start: Duration::ZERO,
                timeline: Vec::new(),
            })),
        }
    }

    #[cfg_attr(not(feature = "rdkafka"), allow(dead_code))]
    /// Forgets everything recorded and starts the clock again (after a warm-up).
    pub fn reset(&self, start: Instant) {
        let mut g = self.inner.lock().expect("recorder lock");
        g.start = start;
        g.all.reset();
        g.window.reset();
        g.window_start = Duration::ZERO;
        g.timeline.clear();
    }

    /// Records `count` completions of latency `lat`.
    pub fn record(&self, lat: Duration, count: u64) {
        let us = (lat.as_micros() as u64).clamp(1, 3_600_000_000);
        let mut g = self.inner.lock().expect("recorder lock");
        let now = g.start.elapsed();
        if now - g.window_start >= Duration::from_secs(1) {
            g.roll(now);
        }
        let _ = g.all.record_n(us, count);
        let _ = g.window.record_n(us, count);
    }

    /// The whole-run histogram and the timeline.
    pub fn finish(&self) -> (Histogram<u64>, Vec<Window>) {
        let mut g = self.inner.lock().expect("recorder lock");
        let now = g.start.elapsed();
        g.roll(now);
        (g.all.clone(), g.timeline.clone())
    }
}

impl RecorderInner {
    fn roll(&mut self, now: Duration) {
        if !self.window.is_empty() {
            self.timeline.push(Window {
                at: self.window_start.as_secs_f64(),
                p50: self.window.value_at_quantile(0.5),
                p99: self.window.value_at_quantile(0.99),
                max: self.window.max(),
            });
        }
        self.window.reset();
        self.window_start = now;
    }
}

/// What a perf run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// "kafkit" or "librdkafka".
    pub client: String,
    /// What ran ("produce", "consume", "e2e").
    pub workload: String,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Produce: ack latency; e2e: write-to-read latency; consume: none.
    pub latency: Option<Histogram<u64>>,
    pub timeline: Vec<Window>,
    /// Consume: time until the first record arrived (includes joining the group).
    pub first_record: Option<Duration>,
    /// Consume: time until the consumer had its partitions (joining the group, the rebalance).
    pub joined: Option<Duration>,
    /// Peak resident memory of this process, bytes (Linux; includes an embedded cluster).
    pub peak_rss: Option<u64>,
}

/// Peak resident set size of this process (VmHWM), bytes.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Report {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.latency
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| ms(h.value_at_quantile(q)))
    }

    /// One line in kafka-producer-perf-test's style plus percentiles.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{}: {} records {}, {:.1} records/sec ({:.2} MB/sec) in {:.2} s",
            self.client,
            self.records,
            if self.workload == "produce" {
                "sent"
            } else {
                "received"
            },
            self.records_per_sec(),
            self.mb_per_sec(),
            self.elapsed.as_secs_f64()
        );
        if let Some(h) = self.latency.as_ref().filter(|h| !h.is_empty()) {
            let _ = write!(
                s,
                ", {:.2} ms avg latency, {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th",
                h.mean() / 1000.0,
                ms(h.max()),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.95)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999)),
            );
        }
        if let Some(j) = self.joined {
            let _ = write!(
                s,
                ", partitions assigned after {:.1} ms",
                j.as_secs_f64() * 1000.0
            );
        }
        if let Some(f) = self.first_record {
            let _ = write!(s, ", first record after {:.1} ms", f.as_secs_f64() * 1000.0);
        }
        if self.errors > 0 {
            let _ = write!(s, ", {} errors", self.errors);
        }
        if let Some(r) = self.peak_rss {
            let _ = write!(s, ", peak RSS {:.1} MiB", r as f64 / 1048576.0);
        }
        s
    }

    /// The documented JSON fields.
    pub fn json(&self) -> serde_json::Value {
        let q = |x| self.quantile_ms(x);
        serde_json::json!({
            "client": self.client,
            "workload": self.workload,
            "records": self.records,
            "bytes": self.bytes,
            "errors": self.errors,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_sec": self.records_per_sec(),
            "mb_per_sec": self.mb_per_sec(),
            "latency_ms": self.latency.as_ref().filter(|h| !h.is_empty()).map(|h| serde_json::json!({
                "avg": h.mean() / 1000.0,
                "max": ms(h.max()),
                "p50": q(0.5),
                "p95": q(0.95),
                "p99": q(0.99),
                "p999": q(0.999),
            })),
            "first_record_ms": self.first_record.map(|d| d.as_secs_f64() * 1000.0),
            "rebalance_ms": self.joined.map(|d| d.as_secs_f64() * 1000.0),
            "peak_rss_bytes": self.peak_rss,
        })
    }

    /// An SVG with a latency histogram (left) and a latency timeline, p50/p99/max per second
    /// (right). Written by hand: a plotting crate would bring font handling for two charts.
    pub fn svg(&self) -> String {
        let (w, h) = (1000.0, 420.0);
        let mut s = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="24" font-size="15">{} {}: {} records, {:.0} records/s{}</text>
"#,
            esc(&self.client),
            esc(&self.workload),
            self.records,
            self.records_per_sec(),
            self.quantile_ms(0.99)
                .map(|p| format!(", p99 {p:.2} ms"))
                .unwrap_or_default()
        );
        let Some(hist) = self.latency.as_ref().filter(|h| !h.is_empty()) else {
            s.push_str(r#"<text x="20" y="60">no latency recorded</text></svg>"#);
            return s;
        };
        // Histogram: log2 buckets of latency.
        let (x0, y0, pw, ph) = (60.0, 60.0, 400.0, 300.0);
        let max_us = hist.max().max(2);
        let nb = (64 - max_us.leading_zeros()) as usize;
        let mut buckets = vec![0u64; nb + 1];
        for v in hist.iter_recorded() {
            let b = (64 - v.value_iterated_to().max(1).leading_zeros()) as usize;
            buckets[b.min(nb)] += v.count_since_last_iteration();
        }
        let top = *buckets.iter().max().unwrap_or(&1) as f64;
        let bw = pw / buckets.len() as f64;
        let _ = writeln!(
            s,
            r#"<text x="{x0}" y="{}">latency histogram (count per power-of-two bucket)</text>"#,
            y0 - 8.0
        );
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
            y0 + ph,
            x0 + pw,
            y0 + ph
        );
        for (i, c) in buckets.iter().enumerate() {
            let bh = if top > 0.0 { *c as f64 / top * ph } else { 0.0 };
            let x = x0 + i as f64 * bw;
            let _ = writeln!(
                s,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#4a7ebb"><title>{} records ≤ {}</title></rect>"##,
                y0 + ph - bh,
                (bw - 1.0).max(1.0),
                c,
                fmt_us(1u64 << i)
            );
            if i % 3 == 0 || i + 1 == buckets.len() {
                let _ = writeln!(
                    s,
                    r#"<text x="{x:.1}" y="{:.1}" font-size="10">{}</text>"#,
                    y0 + ph + 14.0,
                    fmt_us(1u64 << i)
                );
            }
        }
        // Timeline: p50, p99, max per second, log scale.
        let (x1, pw2) = (540.0, 420.0);
        let _ = writeln!(
            s,
            r#"<text x="{x1}" y="{}">latency per second: max (grey), p99 (red), p50 (blue); log scale</text>"#,
            y0 - 8.0
        );
        let _ = writeln!(
            s,
            r##"<line x1="{x1}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
            y0 + ph,
            x1 + pw2,
            y0 + ph
        );
        let tl = &self.timeline;
        if !tl.is_empty() {
            let tmax = tl.last().map_or(1.0, |w| w.at + 1.0).max(1.0);
            let lmax = (tl.iter().map(|w| w.max).max().unwrap_or(2).max(2) as f64).log10();
            let lmin = (tl.iter().map(|w| w.p50).min().unwrap_or(1).max(1) as f64)
                .log10()
                .min(lmax - 0.5);
            let y = |v: u64| y0 + ph - ((v.max(1) as f64).log10() - lmin) / (lmax - lmin) * ph;
            for (get, color) in [
                (&(|w: &Window| w.max) as &dyn Fn(&Window) -> u64, "#999"),
                (&|w: &Window| w.p99, "#c0392b"),
                (&|w: &Window| w.p50, "#2e6da4"),
            ] {
                let pts: Vec<String> = tl
                    .iter()
                    .map(|w| {
                        format!(
                            "{:.1},{:.1}",
                            x1 + (w.at + 0.5) / tmax * pw2,
                            y(get(w)).clamp(y0, y0 + ph)
                        )
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                    pts.join(" ")
                );
            }
            for frac in [0.0, 0.5, 1.0] {
                let v = 10f64.powf(lmin + frac * (lmax - lmin)) as u64;
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{:.1}" font-size="10">{}</text>"#,
                    x1 + pw2 + 4.0,
                    y(v),
                    fmt_us(v)
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{x1}" y="{:.1}" font-size="10">0 s</text><text x="{:.1}" y="{:.1}" font-size="10">{tmax:.0} s</text>"#,
                y0 + ph + 14.0,
                x1 + pw2 - 20.0,
                y0 + ph + 14.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.1}s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_renders() {
        let r = Recorder::new(Instant::now());
        for i in 1..=1000u64 {
            r.record(Duration::from_micros(i * 10), 1);
        }
        let (h, tl) = r.finish();
        assert_eq!(h.len(), 1000);
        let rep = Report {
            client: "kafkit".into(),
            workload: "produce".into(),
            records: 1000,
            bytes: 100_000,
            errors: 0,
            elapsed: Duration::from_secs(1),
            latency: Some(h),
            timeline: tl,
            first_record: None,
            joined: None,
            peak_rss: None,
        };
        let p99 = rep.quantile_ms(0.99).unwrap();
        assert!((9.8..=10.0).contains(&p99), "{p99}");
        let j = rep.json();
        assert_eq!(j["records"], 1000);
        assert!(j["latency_ms"]["p999"].as_f64().unwrap() > 9.9);
        let svg = rep.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<polyline"));
        assert!(rep.line().contains("99th"));
    }
}
