//! One partition's producer core, without I/O and without a clock (sans-io, in the shape of
//! quinn-proto and of `reader::membership`): the driver (`writer::send::partition_task`) feeds
//! it writes, answers and the time, and carries out what it asks for.
//!
//! - **Batching**: writes gather into the forming batch until it holds `batch_size` messages
//!   or `batch_bytes`, a synchronous write joins it (its caller is blocked: waiting would only
//!   add latency, kafka-go #326/#1180), the writer closes, or `linger` has passed since the
//!   batch's first write was queued (librdkafka's `linger.ms`). A write that does not fit
//!   closes the batch and starts the next one.
//! - **In flight**: up to `max_in_flight` batches are sent and unanswered; answers are taken
//!   in the order the batches were sent.
//! - **Retry**: when a batch fails with a retriable error, nothing more is sent until every
//!   batch sent after it has answered; what succeeded is kept, the rest is sent again in the
//!   original order after a backoff (doubling up to `retry_backoff_max`), up to `max_attempts`
//!   per batch. A retry resends the bytes encoded the first time.
//! - **Idempotence**: each batch is numbered from the partition's next sequence under the
//!   producer identity it is sent with. OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID ask
//!   the driver for a new epoch (KIP-360); then every batch not acknowledged is renumbered
//!   from 0 and its encoded bytes restamped, not encoded again.
//!
//! The core returns the outcome of each batch as [`Event::Done`] with the writes' tokens (the
//! driver's reply channels and `buffer_memory` permits): memory stays charged until a batch's
//! outcome is known, which is what bounds the writer (back-pressure on the caller).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafkit_protocol::codes;

use super::encode::{build_records, restamp, Encoding};
use super::ProducerIdentity;
use crate::error::{Error, Result};
use crate::Message;

/// The knobs the core obeys (from `WriterConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub batch_size: usize,
    pub batch_bytes: usize,
    /// How long a batch's first write may wait for company.
    pub linger: Duration,
    pub max_in_flight: usize,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
}

/// One call's messages for this partition.
#[derive(Debug)]
pub(crate) struct Write<T> {
    pub messages: Vec<Message>,
    /// Estimated encoded size (payload plus record overhead), for `batch_bytes`.
    pub bytes: usize,
    /// Key + value + header bytes.
    pub payload: usize,
    /// When the write was queued: linger is measured from the first write of a batch.
    pub queued_at: Instant,
    /// The caller waits for it: send without lingering.
    pub sync: bool,
    /// The driver's handle for the outcome, returned in [`Event::Done`].
    pub token: T,
}

/// Per-partition numbering of an idempotent writer's records.
#[derive(Debug, Default)]
struct Sequence {
    identity: Option<ProducerIdentity>,
    next: i32,
}

fn wrap_seq(seq: i32, n: usize) -> i32 {
    ((seq as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

/// One produce request's worth of writes, with its numbering and retry state.
#[derive(Debug)]
struct Batch<T> {
    id: u64,
    /// The writes: their messages until encoded, then only their tokens.
    writes: Vec<Write<T>>,
    n: usize,
    payload: usize,
    /// The encoded records once sent, and the (identity, first sequence) stamped in them.
    encoded: Option<(Bytes, Option<ProducerIdentity>, i32)>,
    /// Identity and first sequence the records are numbered with (idempotence).
    identity: Option<ProducerIdentity>,
    first_seq: i32,
    numbered: bool,
    attempts: u32,
    backoff: Duration,
    not_before: Option<Instant>,
    started: Option<Instant>,
}

/// A batch to put on the wire: its id (to report the answer with) and its records, or why
/// they could not be made (the driver reports that as the answer).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub id: u64,
    pub n: usize,
    pub records: Result<Bytes>,
}

/// A batch's final outcome.
#[derive(Debug)]
pub(crate) struct Done<T> {
    pub tokens: Vec<T>,
    pub n: usize,
    pub payload: usize,
    /// From the first send to the outcome.
    pub latency: Duration,
    /// Base offset (-1 when unknown: acks=0 or a duplicate), or the error.
    pub result: std::result::Result<i64, Arc<Error>>,
}

/// What the core tells its driver.
#[derive(Debug)]
pub(crate) enum Event<T> {
    /// A batch is acknowledged or failed for good.
    Done(Done<T>),
    /// A batch failed with a retriable error and will be sent again (count it, refresh
    /// metadata).
    Retrying { attempt: u32, error: Error },
    /// Sequence numbers were lost: get the epoch after this identity, then call
    /// [`PartitionCore::epoch_bumped`].
    BumpEpoch(Option<ProducerIdentity>),
}

/// A failed batch waiting for the answers to everything sent after it.
#[derive(Debug)]
struct Retry<T> {
    resend: Vec<Batch<T>>,
    bump: bool,
    old_identity: Option<ProducerIdentity>,
    backoff: Duration,
    awaiting_epoch: bool,
}

/// How an answer is taken.
enum Verdict {
    Ok(i64),
    /// Retriable, or a sequence error of an idempotent batch (`sequence`: a new epoch is
    /// needed; `unknown_producer`: the broker forgot the producer).
    Resend {
        error: Error,
        sequence: bool,
        unknown_producer: bool,
    },
    Fail(Error),
}

/// One partition's batching, in-flight, retry and sequence state.
#[derive(Debug)]
pub(crate) struct PartitionCore<T> {
    limits: Limits,
    encoding: Encoding,
    forming: Vec<Write<T>>,
    forming_n: usize,
    forming_bytes: usize,
    forming_sync: bool,
    deadline: Option<Instant>,
    /// A write that did not fit the forming batch: it starts the next one.
    carry: Option<Write<T>>,
    /// Cut batches waiting for an in-flight slot (or a retry's backoff), in order.
    queue: VecDeque<Batch<T>>,
    /// Sent and unanswered, in the order sent.
    inflight: VecDeque<Batch<T>>,
    retry: Option<Retry<T>>,
    seq: Sequence,
    next_id: u64,
    closed: bool,
    events: VecDeque<Event<T>>,
}

impl<T> PartitionCore<T> {
    pub(crate) fn new(limits: Limits, encoding: Encoding) -> Self {
        Self {
            limits,
            encoding,
            forming: Vec::new(),
            forming_n: 0,
            forming_bytes: 0,
            forming_sync: false,
            deadline: None,
            carry: None,
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            retry: None,
            seq: Sequence::default(),
            next_id: 0,
            closed: false,
            events: VecDeque::new(),
        }
    }

    /// Whether [`push`](Self::push) may be called: the forming batch has room and no write
    /// is waiting to start the next one. While false, the driver leaves writes in its channel
    /// (back-pressure up to the caller).
    pub(crate) fn accepts(&self) -> bool {
        !self.closed
            && self.carry.is_none()
            && self.forming_n < self.limits.batch_size
            && self.forming_bytes < self.limits.batch_bytes
    }

    /// Adds a write to the forming batch, or keeps it to start the next one when it does not
    /// fit (which closes the forming batch).
    pub(crate) fn push(&mut self, w: Write<T>) {
        debug_assert!(self.accepts());
        let fits = self.forming.is_empty()
            || (self.forming_n + w.messages.len() <= self.limits.batch_size
                && self.forming_bytes + w.bytes <= self.limits.batch_bytes);
        if fits {
            self.add(w);
        } else {
            self.carry = Some(w);
        }
    }

    fn add(&mut self, w: Write<T>) {
        if self.forming.is_empty() {
            self.deadline = Some(w.queued_at + self.limits.linger);
        }
        self.forming_n += w.messages.len();
        self.forming_bytes += w.bytes;
        self.forming_sync |= w.sync;
        self.forming.push(w);
    }

    /// No more writes: what is forming is sent without waiting for linger.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    /// Closes the forming batch if it is due, and lets a carried write start the next.
    fn cut(&mut self, now: Instant) {
        loop {
            if !self.forming.is_empty()
                && (self.closed
                    || self.forming_n >= self.limits.batch_size
                    || self.forming_bytes >= self.limits.batch_bytes
                    || self.forming_sync
                    || self.carry.is_some()
                    || self.deadline.is_some_and(|d| now >= d))
            {
                let writes = std::mem::take(&mut self.forming);
                self.next_id += 1;
                self.queue.push_back(Batch {
                    id: self.next_id,
                    n: self.forming_n,
                    payload: writes.iter().map(|w| w.payload).sum(),
                    writes,
                    encoded: None,
                    identity: None,
                    first_seq: 0,
                    numbered: false,
                    attempts: 0,
                    backoff: self.limits.retry_backoff,
                    not_before: None,
                    started: None,
                });
                (self.forming_n, self.forming_bytes, self.forming_sync) = (0, 0, false);
                self.deadline = None;
            }
            if self.forming.is_empty() {
                if let Some(w) = self.carry.take() {
                    self.add(w);
                    continue; // it may be due at once (sync, or full)
                }
            }
            return;
        }
    }

    /// Whether a batch may be sent now (then call [`send`](Self::send) with the producer
    /// identity to number it with).
    pub(crate) fn sendable(&mut self, now: Instant) -> bool {
        self.cut(now);
        self.retry.is_none()
            && self.inflight.len() < self.limits.max_in_flight
            && self
                .queue
                .front()
                .is_some_and(|b| b.not_before.is_none_or(|t| t <= now))
    }

    /// Takes the next batch to send, numbers it (first time, or after the identity changed),
    /// and encodes it (first time) or restamps its encoded bytes (new identity). `identity`
    /// is the producer identity now (`Ok(None)` without idempotence) or why none could be had.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        identity: Result<Option<ProducerIdentity>>,
    ) -> Option<Outgoing> {
        if !self.sendable(now) {
            return None;
        }
        let mut b = self.queue.pop_front()?;
        b.attempts += 1;
        b.started.get_or_insert(now);
        let records = identity.and_then(|identity| self.records(&mut b, identity));
        let out = Outgoing {
            id: b.id,
            n: b.n,
            records,
        };
        self.inflight.push_back(b);
        Some(out)
    }

    fn records(&mut self, b: &mut Batch<T>, identity: Option<ProducerIdentity>) -> Result<Bytes> {
        if !b.numbered || b.identity != identity {
            if self.seq.identity != identity {
                // New producer or new epoch: numbering starts over.
                self.seq.identity = identity;
                self.seq.next = 0;
            }
            b.identity = identity;
            b.first_seq = self.seq.next;
            b.numbered = true;
            if identity.is_some() {
                self.seq.next = wrap_seq(self.seq.next, b.n);
            }
        }
        let records = match b.encoded.take() {
            Some((r, id, first)) if id == identity && first == b.first_seq => r,
            Some((r, _, _)) => restamp(&r, identity, b.first_seq)?,
            None => {
                let r = build_records(
                    &self.encoding,
                    b.writes.iter().flat_map(|w| &w.messages),
                    identity,
                    b.first_seq,
                )?;
                // The encoded bytes are all a retry needs: free the messages now.
                for w in &mut b.writes {
                    w.messages = Vec::new();
                }
                r
            }
        };
        b.encoded = Some((records.clone(), identity, b.first_seq));
        Ok(records)
    }

    fn verdict(b: &Batch<T>, r: Result<i64>) -> Verdict {
        let error = match r {
            Ok(base) => return Verdict::Ok(base),
            Err(e) => e,
        };
        let code = error.kafka_code();
        if code == Some(codes::DUPLICATE_SEQUENCE_NUMBER) {
            // The broker already has this batch (a resend after a lost answer).
            return Verdict::Ok(-1);
        }
        let sequence = b.identity.is_some()
            && matches!(
                code,
                Some(codes::OUT_OF_ORDER_SEQUENCE_NUMBER | codes::UNKNOWN_PRODUCER_ID)
            );
        if error.is_retriable() || sequence {
            Verdict::Resend {
                unknown_producer: code == Some(codes::UNKNOWN_PRODUCER_ID),
                sequence,
                error,
            }
        } else {
            Verdict::Fail(error)
        }
    }

    /// The answer to batch `id` (answers come in the order the batches were sent).
    pub(crate) fn on_response(&mut self, id: u64, r: Result<i64>, now: Instant) {
        let Some(pos) = self.inflight.iter().position(|b| b.id == id) else {
            debug_assert!(false, "answer to batch {id}, which is not in flight");
            return;
        };
        let mut b = self.inflight.remove(pos).expect("position");
        let verdict = Self::verdict(&b, r);
        if let Some(retry) = &mut self.retry {
            // Sent after the batch being retried: keep what succeeded, resend the rest.
            match verdict {
                Verdict::Ok(base) => self.done(b, Ok(base), now),
                Verdict::Resend {
                    unknown_producer, ..
                } => {
                    retry.bump |= unknown_producer;
                    retry.resend.push(b);
                }
                Verdict::Fail(e) => self.done(b, Err(e), now),
            }
        } else {
            match verdict {
                Verdict::Ok(base) => self.done(b, Ok(base), now),
                Verdict::Fail(e) => self.done(b, Err(e), now),
                Verdict::Resend { error, .. } if b.attempts >= self.limits.max_attempts => {
                    // With idempotence, later batches now follow a gap: they come back with
                    // OUT_OF_ORDER_SEQUENCE_NUMBER and are renumbered under a new epoch then.
                    self.done(b, Err(error), now);
                }
                Verdict::Resend {
                    error, sequence, ..
                } => {
                    self.events.push_back(Event::Retrying {
                        attempt: b.attempts,
                        error,
                    });
                    let backoff = b.backoff;
                    b.backoff = (b.backoff * 2).min(self.limits.retry_backoff_max);
                    self.retry = Some(Retry {
                        old_identity: b.identity,
                        resend: vec![b],
                        bump: sequence,
                        backoff,
                        awaiting_epoch: false,
                    });
                }
            }
        }
        if self.inflight.is_empty() {
            if let Some(retry) = &mut self.retry {
                if retry.bump && !retry.awaiting_epoch {
                    retry.awaiting_epoch = true;
                    self.events.push_back(Event::BumpEpoch(retry.old_identity));
                } else if !retry.bump {
                    self.requeue(now);
                }
            }
        }
    }

    /// The driver's answer to [`Event::BumpEpoch`]: with the new epoch every batch waiting
    /// is renumbered from 0 when sent again; without one they fail with that error.
    pub(crate) fn epoch_bumped(&mut self, r: Result<()>, now: Instant) {
        match r {
            Ok(()) => {
                self.seq.identity = None; // forces renumbering from 0 at the next send
                self.requeue(now);
            }
            Err(e) => {
                let e = Arc::new(e);
                if let Some(retry) = self.retry.take() {
                    for b in retry.resend {
                        self.done_arc(b, Err(e.clone()), now);
                    }
                }
            }
        }
    }

    fn requeue(&mut self, now: Instant) {
        let Some(retry) = self.retry.take() else {
            return;
        };
        let at = now + retry.backoff;
        for mut b in retry.resend.into_iter().rev() {
            b.not_before = Some(at);
            self.queue.push_front(b);
        }
    }

    fn done(&mut self, b: Batch<T>, result: Result<i64>, now: Instant) {
        self.done_arc(b, result.map_err(Arc::new), now)
    }

    fn done_arc(
        &mut self,
        b: Batch<T>,
        result: std::result::Result<i64, Arc<Error>>,
        now: Instant,
    ) {
        self.events.push_back(Event::Done(Done {
            latency: b
                .started
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
            n: b.n,
            payload: b.payload,
            tokens: b.writes.into_iter().map(|w| w.token).collect(),
            result,
        }));
    }

    /// The next thing the core has to tell or ask the driver.
    pub(crate) fn poll_event(&mut self) -> Option<Event<T>> {
        self.events.pop_front()
    }

    /// When the core next has something to do without new input: the forming batch's
    /// linger ends, or a retry's backoff does.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let linger = if self.forming.is_empty() {
            None
        } else {
            self.deadline
        };
        let retry = if self.retry.is_none() && self.inflight.len() < self.limits.max_in_flight {
            self.queue.front().and_then(|b| b.not_before)
        } else {
            None
        };
        match (linger, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closed and every write's outcome reported.
    pub(crate) fn is_finished(&self) -> bool {
        self.closed
            && self.forming.is_empty()
            && self.carry.is_none()
            && self.queue.is_empty()
            && self.inflight.is_empty()
            && self.retry.is_none()
            && self.events.is_empty()
    }
}

#[cfg(test)]
#[path = "accumulator_tests.rs"]
mod tests;
