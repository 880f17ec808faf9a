//! Choosing a partition for a message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// Every message round robin, key or not.
    RoundRobin,
    /// A user function: `(message, partition count) -> partition`.
    Custom(PartitionFn),
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Balancer::Murmur2 => f.write_str("Murmur2"),
            Balancer::RoundRobin => f.write_str("RoundRobin"),
            Balancer::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Balancer plus its round-robin counter.
#[derive(Debug, Default)]
pub(crate) struct Partitioner {
    balancer: Balancer,
    counter: AtomicUsize,
}

impl Partitioner {
    pub(crate) fn new(balancer: Balancer) -> Self {
        Self {
            balancer,
            counter: AtomicUsize::new(0),
        }
    }

    pub(crate) fn partition(&self, msg: &Message, partitions: usize) -> usize {
        let rr = || self.counter.fetch_add(1, Ordering::Relaxed) % partitions;
        match &self.balancer {
            Balancer::Murmur2 => match &msg.key {
                Some(k) => (murmur2(k) & 0x7fff_ffff) as usize % partitions,
                None => rr(),
            },
            Balancer::RoundRobin => rr(),
            Balancer::Custom(f) => f(msg, partitions) % partitions,
        }
    }
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
