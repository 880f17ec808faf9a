//! What a peer can make a broker hold, and the limits on each (docs/LIMITS.md lists them with
//! their defaults and the error a client sees).
//!
//! * bytes of requests being read: a budget shared by a broker's connections
//!   (Kafka's `queued.max.request.bytes`): a frame's size is taken from the budget when its
//!   header arrives and given back once the request is answered, so many half-sent frames stall
//!   their senders instead of the broker's memory;
//! * decompression: compressed produce batches and legacy message sets are decompressed on
//!   blocking threads, a few at a time, each under [`ClusterConfig::max_decompressed_batch_bytes`];
//! * topic auto-creation: a token bucket of partitions per second (Kafka's KIP-599 controller
//!   mutation rate), so one Metadata request naming thousands of topics cannot create them all.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::config::ClusterConfig;

/// Run-time state behind the limits of [`ClusterConfig`].
#[derive(Debug)]
pub struct Limits {
    /// Bytes of request frames being read or served, per broker (index: node id - 1).
    pub request_bytes: Vec<Arc<Semaphore>>,
    /// Decompressions running at once.
    pub decompressions: Arc<Semaphore>,
    /// Partitions that auto-creation may still create now.
    auto_create: Mutex<TokenBucket>,
}

impl Limits {
    /// Limits for a cluster of `brokers` brokers.
    pub fn new(config: &ClusterConfig, brokers: usize) -> Self {
        let budget = config
            .queued_max_request_bytes
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            request_bytes: (0..brokers)
                .map(|_| Arc::new(Semaphore::new(budget)))
                .collect(),
            decompressions: Arc::new(Semaphore::new(config.max_concurrent_decompressions.max(1))),
            auto_create: Mutex::new(TokenBucket::new(
                config.auto_create_partitions_per_sec,
                Instant::now(),
            )),
        }
    }

    /// Runs decompression work `f` on a blocking thread once one of the
    /// `max_concurrent_decompressions` slots is free. `None` if the task could not run
    /// (shutdown, or `f` panicked).
    pub async fn decompress<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.decompressions.clone().acquire_owned().await.ok()?;
        tokio::task::spawn_blocking(f).await.ok()
    }

    /// Takes `partitions` from the auto-creation budget; false if it is spent for now.
    pub fn take_auto_create(&self, partitions: u32) -> bool {
        self.auto_create
            .lock()
            .expect("auto-create lock")
            .take(partitions as f64, Instant::now())
    }
}

/// A token bucket holding at most one second's worth of tokens (refilled continuously).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens per second (`u32::MAX`: unlimited).
    pub fn new(rate: u32, now: Instant) -> Self {
        Self {
            rate: rate as f64,
            tokens: rate as f64,
            at: now,
        }
    }

    /// Takes `n` tokens if they are there.
    pub fn take(&mut self, n: f64, now: Instant) -> bool {
        if self.rate >= u32::MAX as f64 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.at);
        self.at = now;
        self.tokens = (self.tokens + self.rate * elapsed.as_secs_f64()).min(self.rate);
        // More than a second's worth at once is allowed from a full bucket (otherwise a topic
        // with more partitions than the rate could never be created); it empties the bucket.
        let need = n.min(self.rate);
        if self.tokens >= need {
            self.tokens -= need;
            true
        } else {
            false
        }
    }
}

/// Default for `connections_max_idle` (Kafka's `connections.max.idle.ms`: 10 minutes).
pub const DEFAULT_CONNECTIONS_MAX_IDLE: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        assert!(b.take(10.0, t0));
        assert!(!b.take(1.0, t0));
        assert!(!b.take(1.0, t0 + Duration::from_millis(50)));
        assert!(b.take(1.0, t0 + Duration::from_millis(160)));
        // never more than a second's worth
        assert!(b.take(10.0, t0 + Duration::from_secs(100)));
        assert!(!b.take(1.0, t0 + Duration::from_secs(100)));
        // a single creation larger than the rate is allowed from a full bucket
        let mut b = TokenBucket::new(10, t0);
        assert!(b.take(30.0, t0 + Duration::from_secs(3)));
    }
}
