//! Idempotent producer state of a partition: the last batches of each producer id, rebuilt
//! from batch headers when a log opens, used to drop retried duplicates and refuse gaps.

use std::collections::{HashMap, VecDeque};

use kafkit_protocol::batch::BatchHeader;

/// Batches remembered per producer for duplicate detection (Kafka keeps 5, the most a
/// producer may have in flight).
const PRODUCER_BATCHES: usize = 5;

pub use kafkit_protocol::codes::INVALID_PRODUCER_EPOCH;
pub use kafkit_protocol::codes::OUT_OF_ORDER_SEQUENCE_NUMBER;

/// What the log knows of one idempotent producer.
#[derive(Debug, Clone, Default)]
pub struct ProducerEntry {
    epoch: i16,
    /// (first sequence, last sequence, base offset) of recent batches, oldest first.
    batches: VecDeque<(i32, i32, i64)>,
}

/// The verdict on an incoming batch.
pub enum SeqCheck {
    /// New: append it.
    Append,
    /// Already in the log at this base offset.
    Duplicate(i64),
    /// Refused with this error code.
    Reject(i16),
}

fn last_sequence(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX (Kafka's DefaultRecordBatch.incrementSequence).
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

/// Producer id → state.
pub type Producers = HashMap<i64, ProducerEntry>;

/// Checks a batch against what is known of its producer.
pub fn check(known: Option<&ProducerEntry>, h: &BatchHeader) -> SeqCheck {
    if h.producer_id < 0 {
        return SeqCheck::Append;
    }
    let Some(p) = known else {
        // A producer new to this partition starts at sequence 0.
        return if h.base_sequence == 0 {
            SeqCheck::Append
        } else {
            SeqCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        };
    };
    if h.producer_epoch < p.epoch {
        return SeqCheck::Reject(INVALID_PRODUCER_EPOCH);
    }
    if h.producer_epoch > p.epoch {
        return if h.base_sequence == 0 {
            SeqCheck::Append
        } else {
            SeqCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        };
    }
    let last = last_sequence(h);
    if let Some((_, _, base)) = p
        .batches
        .iter()
        .find(|(f, l, _)| *f == h.base_sequence && *l == last)
    {
        return SeqCheck::Duplicate(*base);
    }
    let expected = p
        .batches
        .back()
        .map_or(0, |(_, l, _)| if *l == i32::MAX { 0 } else { l + 1 });
    if h.base_sequence != expected {
        return SeqCheck::Reject(OUT_OF_ORDER_SEQUENCE_NUMBER);
    }
    SeqCheck::Append
}

/// Records an appended batch (its `base_offset` must be the assigned one).
pub fn remember(producers: &mut Producers, h: &BatchHeader) {
    if h.producer_id < 0 {
        return;
    }
    let p = producers.entry(h.producer_id).or_default();
    if h.producer_epoch != p.epoch {
        p.epoch = h.producer_epoch;
        p.batches.clear();
    }
    p.batches
        .push_back((h.base_sequence, last_sequence(h), h.base_offset));
    if p.batches.len() > PRODUCER_BATCHES {
        p.batches.pop_front();
    }
}

/// Forgets batches at or after `end` (after truncation).
pub fn truncate(producers: &mut Producers, end: i64) {
    for p in producers.values_mut() {
        p.batches.retain(|(_, _, base)| *base < end);
    }
    producers.retain(|_, p| !p.batches.is_empty());
}
