//! Choosing a partition for a message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Message;

/// A user partitioner: `(message, partition count) -> partition`.
pub type PartitionFn = Arc<dyn Fn(&Message, usize) -> usize + Send + Sync>;

/// How the writer picks a partition.
#[derive(Clone, Default)]
pub enum Balancer {
    /// Keyed messages: `murmur2(key) & 0x7fffffff % partitions`, as the Java client and
    /// librdkafka's `murmur2_random`; unkeyed messages: round robin. The default.
    #[default]
    Murmur2,
    /// Keyed messages: FNV-1a 32-bit of the key, as sarama's `HashPartitioner` and kafka-go's
    /// `Hash` (`|int32(fnv1a(key)) % partitions|`); unkeyed: round robin.
    Hash,
    /// Keyed messages: CRC-32 (IEEE) of the key modulo the partition count, as librdkafka's
    /// `consistent_random`; unkeyed: round robin.
    Crc32,
    /// Every message to the partition that has been sent the fewest bytes so far (kafka-go's
    /// `LeastBytes`).
    LeastBytes,
    /// Every message round robin, key or not.
    RoundRobin,
    /// Keyed messages as [`Murmur2`](Self::Murmur2); unkeyed messages stick to one partition
    /// until a batch's worth (`batch_size` records or `batch_bytes`) has gone to it or twice
    /// `batch_timeout` has passed, then move to the next partition — the Java client's default
    /// for unkeyed records (KIP-480/KIP-794) and librdkafka's (`sticky.partitioning.linger.ms`,
    /// twice `linger.ms` by default). Fewer, fuller batches than round robin.
    Sticky,
    /// A user function: `(message, partition count) -> partition`.
    Custom(PartitionFn),
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Balancer::Murmur2 => f.write_str("Murmur2"),
            Balancer::Hash => f.write_str("Hash"),
            Balancer::Crc32 => f.write_str("Crc32"),
            Balancer::LeastBytes => f.write_str("LeastBytes"),
            Balancer::RoundRobin => f.write_str("RoundRobin"),
            Balancer::Sticky => f.write_str("Sticky"),
            Balancer::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Where unkeyed messages of a [`Balancer::Sticky`] writer go now.
#[derive(Debug)]
struct StickyState {
    partition: usize,
    since: Instant,
    records: usize,
    bytes: usize,
}

/// When a sticky partition is left: a batch's worth or a time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StickyLimits {
    pub(crate) records: usize,
    pub(crate) bytes: usize,
    pub(crate) time: Duration,
}

impl Default for StickyLimits {
    fn default() -> Self {
        Self {
            records: 10_000,
            bytes: 1 << 20,
            time: Duration::from_millis(10),
        }
    }
}

/// Balancer plus its state (round-robin counter, bytes per partition for LeastBytes, the
/// current sticky partition).
#[derive(Debug, Default)]
pub(crate) struct Partitioner {
    balancer: Balancer,
    counter: AtomicUsize,
    bytes: std::sync::Mutex<Vec<u64>>,
    sticky: std::sync::Mutex<Option<StickyState>>,
    limits: StickyLimits,
}

impl Partitioner {
    pub(crate) fn new(balancer: Balancer) -> Self {
        Self {
            balancer,
            counter: AtomicUsize::new(0),
            bytes: Default::default(),
            sticky: Default::default(),
            limits: StickyLimits::default(),
        }
    }

    /// When [`Balancer::Sticky`] moves on (the writer's batch size and linger).
    pub(crate) fn with_sticky_limits(mut self, limits: StickyLimits) -> Self {
        self.limits = limits;
        self
    }

    fn sticky(&self, msg: &Message, partitions: usize) -> usize {
        let mut s = self.sticky.lock().expect("sticky lock");
        let now = Instant::now();
        let l = self.limits;
        let moved_on = s.as_ref().is_none_or(|s| {
            s.partition >= partitions
                || s.records >= l.records
                || s.bytes >= l.bytes
                || now.duration_since(s.since) >= l.time
        });
        if moved_on {
            *s = Some(StickyState {
                partition: self.counter.fetch_add(1, Ordering::Relaxed) % partitions,
                since: now,
                records: 0,
                bytes: 0,
            });
        }
        let s = s.as_mut().expect("set above");
        s.records += 1;
        s.bytes += msg.size();
        s.partition
    }

    pub(crate) fn partition(&self, msg: &Message, partitions: usize) -> usize {
        let rr = || self.counter.fetch_add(1, Ordering::Relaxed) % partitions;
        match &self.balancer {
            Balancer::Murmur2 => match &msg.key {
                Some(k) => (murmur2(k) & 0x7fff_ffff) as usize % partitions,
                None => rr(),
            },
            Balancer::Hash => match &msg.key {
                Some(k) => ((fnv1a(k) as i32) % partitions as i32).unsigned_abs() as usize,
                None => rr(),
            },
            Balancer::Crc32 => match &msg.key {
                Some(k) => crc32(k) as usize % partitions,
                None => rr(),
            },
            Balancer::LeastBytes => {
                let mut bytes = self.bytes.lock().expect("bytes lock");
                let len = partitions.max(bytes.len());
                bytes.resize(len, 0);
                let p = (0..partitions).min_by_key(|p| bytes[*p]).unwrap_or(0);
                bytes[p] += msg.size() as u64;
                p
            }
            Balancer::RoundRobin => rr(),
            Balancer::Sticky => match &msg.key {
                Some(k) => (murmur2(k) & 0x7fff_ffff) as usize % partitions,
                None => self.sticky(msg, partitions),
            },
            Balancer::Custom(f) => f(msg, partitions) % partitions,
        }
    }
}

/// 32-bit FNV-1a (Go's `hash/fnv.New32a`, which sarama and kafka-go use).
pub fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ *b as u32).wrapping_mul(0x0100_0193)
    })
}

/// CRC-32 (IEEE 802.3), librdkafka's `rd_crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    kafkit_protocol::records::IEEE.checksum(data)
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), as a signed 32-bit value.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the Java client's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_java() {
        let cases: &[(&str, i32)] = &[
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (s, want) in cases {
            assert_eq!(murmur2(s.as_bytes()), *want, "murmur2({s:?})");
        }
    }

    /// FNV-1a vectors from the FNV reference test suite (the same function as Go's fnv.New32a).
    #[test]
    fn fnv1a_matches_reference() {
        assert_eq!(fnv1a(b""), 0x811c9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9cf968);
    }

    /// The standard CRC-32 check value, and partitions as sarama/librdkafka compute them.
    #[test]
    fn crc32_and_partition_formulas() {
        assert_eq!(crc32(b"123456789"), 0xcbf43926);
        let p = Partitioner::new(Balancer::Crc32);
        assert_eq!(
            p.partition(&Message::new("123456789", "v"), 7),
            (0xcbf43926u32 % 7) as usize
        );
        // sarama: int32(0xbf9cf968) = -1080231576; Go's % keeps the sign: -4; negated: 4
        let h = Partitioner::new(Balancer::Hash);
        assert_eq!(h.partition(&Message::new("foobar", "v"), 7), 4);
        assert_eq!(
            h.partition(&Message::new("a", "v"), 10),
            ((0xe40c292cu32 as i32) % 10).unsigned_abs() as usize
        );
    }

    #[test]
    fn least_bytes_fills_the_emptiest_partition() {
        let p = Partitioner::new(Balancer::LeastBytes);
        assert_eq!(p.partition(&Message::value("x".repeat(100)), 3), 0);
        assert_eq!(p.partition(&Message::value("x".repeat(10)), 3), 1);
        assert_eq!(p.partition(&Message::value("x".repeat(10)), 3), 2);
        assert_eq!(p.partition(&Message::value("x"), 3), 1);
    }

    #[test]
    fn sticky_keeps_a_partition_for_a_batch_then_moves_on_and_hashes_keys() {
        let p = Partitioner::new(Balancer::Sticky).with_sticky_limits(StickyLimits {
            records: 3,
            bytes: 1 << 20,
            time: Duration::from_secs(3600),
        });
        let v = Message::value("v");
        let seen: Vec<usize> = (0..9).map(|_| p.partition(&v, 3)).collect();
        assert_eq!(seen, vec![0, 0, 0, 1, 1, 1, 2, 2, 2]);
        // Keys go where murmur2 says, whatever the sticky partition.
        let k = Message::new("21", "v");
        assert_eq!(
            p.partition(&k, 3),
            ((-973932308i32 as u32 & 0x7fff_ffff) % 3) as usize
        );
        // By bytes, and by time.
        let p = Partitioner::new(Balancer::Sticky).with_sticky_limits(StickyLimits {
            records: 1000,
            bytes: 250,
            time: Duration::from_secs(3600),
        });
        let big = Message::value("x".repeat(100));
        let seen: Vec<usize> = (0..4).map(|_| p.partition(&big, 2)).collect();
        assert_eq!(seen, vec![0, 0, 0, 1]);
        let p = Partitioner::new(Balancer::Sticky).with_sticky_limits(StickyLimits {
            records: 1000,
            bytes: 1 << 20,
            time: Duration::ZERO,
        });
        let seen: Vec<usize> = (0..3).map(|_| p.partition(&v, 3)).collect();
        assert_eq!(seen, vec![0, 1, 2], "no time to stick: round robin");
    }

    #[test]
    fn same_key_same_partition_and_round_robin() {
        let p = Partitioner::new(Balancer::Murmur2);
        let m = Message::new("key-7", "v");
        let first = p.partition(&m, 3);
        assert!((0..10).all(|_| p.partition(&m, 3) == first));
        let unkeyed = Message::value("v");
        let seen: Vec<usize> = (0..3).map(|_| p.partition(&unkeyed, 3)).collect();
        assert_eq!(seen, vec![0, 1, 2]);
    }
}
