//! The partition core under simulated time: every test moves a clock by hand (`t0 + ms`);
//! nothing sleeps, nothing touches a socket. Records are really encoded (and restamped), so
//! the batch headers the broker would see are checked too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafkit_protocol::batch::{split_batches, verify_crc, BatchHeader};
use kafkit_protocol::codes;
use kafkit_protocol::records::Compression;

use super::*;
use crate::writer::encode::RECORD_OVERHEAD;

fn limits() -> Limits {
    Limits {
        batch_size: 100,
        batch_bytes: 1 << 20,
        linger: Duration::from_millis(5),
        max_in_flight: 5,
        max_attempts: 3,
        retry_backoff: Duration::from_millis(100),
        retry_backoff_max: Duration::from_secs(1),
    }
}

fn core_with<T>(l: Limits) -> PartitionCore<T> {
    PartitionCore::new(
        l,
        Encoding {
            compression: Compression::Lz4,
            level: None,
            batch_size: l.batch_size,
            batch_bytes: l.batch_bytes,
        },
    )
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A write of `n` messages (10 B values) queued at `at`.
fn write<T>(token: T, n: usize, at: Instant, sync: bool) -> Write<T> {
    let messages: Vec<Message> = (0..n)
        .map(|i| Message::new(format!("k{i}"), format!("value-{i:04}")))
        .collect();
    Write {
        bytes: messages.iter().map(|m| m.size() + RECORD_OVERHEAD).sum(),
        payload: messages.iter().map(|m| m.size()).sum(),
        messages,
        queued_at: at,
        sync,
        token,
    }
}

fn err(code: i16) -> Error {
    Error::kafka(code, "test")
}

const NO_ID: Result<Option<ProducerIdentity>> = Ok(None);

/// The events so far, as (tokens, result) for Done and markers for the others.
fn drain<T>(c: &mut PartitionCore<T>) -> Vec<Event<T>> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn done_tokens<T: Clone>(events: &[Event<T>]) -> Vec<(Vec<T>, Option<i64>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Done(d) => Some((d.tokens.clone(), d.result.as_ref().ok().copied())),
            _ => None,
        })
        .collect()
}

/// Every batch header in the records, each checked against its CRC.
fn headers(records: &Bytes) -> Vec<BatchHeader> {
    split_batches(records)
        .expect("batches")
        .batches
        .into_iter()
        .map(|r| verify_crc(&records[r]).expect("crc"))
        .collect()
}

#[test]
fn linger_is_counted_from_the_batchs_first_write() {
    let t0 = Instant::now();
    let mut c = core_with(limits());
    c.push(write(1, 1, t0, false));
    assert!(!c.sendable(t0));
    c.push(write(2, 2, t0 + ms(3), false));
    // The second write does not restart the clock.
    assert_eq!(c.next_deadline(), Some(t0 + ms(5)));
    assert!(!c.sendable(t0 + ms(5) - Duration::from_nanos(1)));
    assert!(c.sendable(t0 + ms(5)));
    let out = c.send(t0 + ms(5), NO_ID).expect("batch");
    assert_eq!(out.n, 3);
    assert_eq!(headers(&out.records.unwrap())[0].record_count, 3);
    assert_eq!(c.next_deadline(), None, "nothing forming, nothing to retry");
}

#[test]
fn a_synchronous_write_does_not_wait_for_linger() {
    let t0 = Instant::now();
    let mut c = core_with(Limits {
        linger: Duration::from_secs(1),
        ..limits()
    });
    c.push(write(1, 1, t0, false));
    c.push(write(2, 1, t0, true));
    assert!(c.sendable(t0), "a caller is blocked on this batch");
    let out = c.send(t0, NO_ID).unwrap();
    assert_eq!(out.n, 2, "the queued write rides along");
}

#[test]
fn batch_size_and_batch_bytes_close_batches() {
    let t0 = Instant::now();
    let mut c = core_with(Limits {
        batch_size: 3,
        ..limits()
    });
    c.push(write(1, 2, t0, false));
    assert!(c.accepts());
    c.push(write(2, 2, t0, false)); // does not fit: starts the next batch
    assert!(!c.accepts(), "a carried write waits for the next batch");
    assert!(c.sendable(t0), "a full batch does not linger");
    assert_eq!(c.send(t0, NO_ID).unwrap().n, 2);
    assert!(c.accepts());
    c.push(write(3, 1, t0, false));
    assert!(!c.accepts(), "3 messages: full");
    assert_eq!(c.send(t0, NO_ID).unwrap().n, 3);

    // batch_bytes: two writes of 3 messages fit in 7 messages' worth of bytes, three do not.
    let one = write((), 1, t0, false).bytes;
    let mut c = core_with(Limits {
        batch_bytes: 7 * one,
        ..limits()
    });
    c.push(write(1, 3, t0, false));
    c.push(write(2, 3, t0, false));
    assert!(c.accepts());
    c.push(write(3, 3, t0, false));
    assert!(c.sendable(t0));
    assert_eq!(c.send(t0, NO_ID).unwrap().n, 6);
    assert!(
        !c.sendable(t0),
        "the carried write lingers in its own batch"
    );
    assert!(c.sendable(t0 + ms(5)));

    // One write larger than batch_size on its own is one batch of several record batches
    // (Kafka takes one record batch per partition per request; the driver splits them).
    let mut c = core_with(Limits {
        batch_size: 4,
        ..limits()
    });
    c.push(write(1, 10, t0, true));
    let out = c.send(t0, NO_ID).unwrap();
    let counts: Vec<i32> = headers(&out.records.unwrap())
        .iter()
        .map(|h| h.record_count)
        .collect();
    assert_eq!(counts, [4, 4, 2]);
}

#[test]
fn max_in_flight_holds_the_rest_and_answers_complete_in_order() {
    let t0 = Instant::now();
    let mut c = core_with(Limits {
        max_in_flight: 2,
        ..limits()
    });
    for token in 0..4u32 {
        c.push(write(token, 1, t0, true));
        c.sendable(t0); // cuts the batch
    }
    let a = c.send(t0, NO_ID).unwrap().id;
    let b = c.send(t0, NO_ID).unwrap().id;
    assert!(!c.sendable(t0), "two in flight");
    assert!(c.send(t0, NO_ID).is_none());
    c.on_response(a, Ok(0), t0 + ms(1));
    let d = c.send(t0 + ms(1), NO_ID).unwrap().id;
    c.on_response(b, Ok(1), t0 + ms(2));
    let e = c.send(t0 + ms(2), NO_ID).unwrap().id;
    c.on_response(d, Ok(2), t0 + ms(3));
    c.on_response(e, Ok(3), t0 + ms(4));
    let events = drain(&mut c);
    assert_eq!(
        done_tokens(&events),
        [
            (vec![0], Some(0)),
            (vec![1], Some(1)),
            (vec![2], Some(2)),
            (vec![3], Some(3))
        ]
    );
    // Latency runs from the first send to the answer.
    let Event::Done(first) = &events[0] else {
        panic!("done")
    };
    assert_eq!(first.latency, ms(1));
    c.close();
    assert!(c.is_finished());
}

#[test]
fn a_failed_middle_batch_waits_for_later_answers_then_is_resent_first() {
    let t0 = Instant::now();
    let mut c = core_with(limits());
    let mut ids = Vec::new();
    let mut first_bytes = Vec::new();
    for token in 0..3u32 {
        c.push(write(token, 2, t0, true));
        let out = c.send(t0, NO_ID).unwrap();
        ids.push(out.id);
        first_bytes.push(out.records.unwrap());
    }
    c.push(write(3, 1, t0, true)); // queued behind the retry
    c.on_response(ids[0], Ok(0), t0 + ms(1));
    c.on_response(ids[1], Err(err(codes::NOT_LEADER_OR_FOLLOWER)), t0 + ms(1));
    assert!(
        !c.sendable(t0 + ms(1)),
        "nothing is sent while a retry waits"
    );
    c.on_response(ids[2], Ok(4), t0 + ms(2));
    let events = drain(&mut c);
    assert!(matches!(
        events[1],
        Event::Retrying { attempt: 1, ref error } if error.kafka_code() == Some(codes::NOT_LEADER_OR_FOLLOWER)
    ));
    assert_eq!(
        done_tokens(&events),
        [(vec![0], Some(0)), (vec![2], Some(4))],
        "what succeeded is kept"
    );
    // The backoff runs from the last answer.
    assert_eq!(c.next_deadline(), Some(t0 + ms(102)));
    assert!(!c.sendable(t0 + ms(101)));
    let again = c.send(t0 + ms(102), NO_ID).unwrap();
    assert_eq!(again.id, ids[1], "the failed batch goes first");
    assert_eq!(again.records.unwrap(), first_bytes[1], "the same bytes");
    let last = c.send(t0 + ms(102), NO_ID).unwrap();
    c.on_response(again.id, Ok(2), t0 + ms(103));
    c.on_response(last.id, Ok(6), t0 + ms(103));
    assert_eq!(
        done_tokens(&drain(&mut c)),
        [(vec![1], Some(2)), (vec![3], Some(6))]
    );
}

#[test]
fn retries_stop_at_max_attempts_and_back_off_exponentially() {
    let t0 = Instant::now();
    let mut c = core_with(Limits {
        max_attempts: 3,
        ..limits()
    });
    c.push(write(7, 1, t0, true));
    let mut t = t0;
    for (attempt, backoff) in [(1, 100), (2, 200)] {
        let out = c.send(t, NO_ID).expect("sendable");
        c.on_response(out.id, Err(err(codes::REQUEST_TIMED_OUT)), t);
        assert!(matches!(drain(&mut c)[..], [Event::Retrying { attempt: a, .. }] if a == attempt));
        assert_eq!(c.next_deadline(), Some(t + ms(backoff)));
        t += ms(backoff);
    }
    let out = c.send(t, NO_ID).unwrap();
    c.on_response(out.id, Err(err(codes::REQUEST_TIMED_OUT)), t);
    let events = drain(&mut c);
    let [Event::Done(d)] = &events[..] else {
        panic!("one outcome: {events:?}")
    };
    assert_eq!(d.tokens, [7]);
    assert_eq!(
        d.result.as_ref().unwrap_err().kafka_code(),
        Some(codes::REQUEST_TIMED_OUT)
    );
}

#[test]
fn a_non_retriable_error_fails_at_once_and_a_duplicate_is_success() {
    let t0 = Instant::now();
    let mut c = core_with(limits());
    c.push(write(1, 1, t0, true));
    let a = c.send(t0, NO_ID).unwrap().id;
    c.push(write(2, 1, t0, true));
    let b = c.send(t0, NO_ID).unwrap().id;
    c.on_response(a, Err(err(codes::MESSAGE_TOO_LARGE)), t0);
    c.on_response(b, Err(err(codes::DUPLICATE_SEQUENCE_NUMBER)), t0);
    assert_eq!(
        done_tokens(&drain(&mut c)),
        [(vec![1], None), (vec![2], Some(-1))]
    );
    assert!(!c.sendable(t0));
}

#[test]
fn a_sequence_error_bumps_the_epoch_and_restamps_without_encoding_again() {
    let t0 = Instant::now();
    let a = ProducerIdentity { id: 42, epoch: 3 };
    let b = ProducerIdentity { id: 42, epoch: 4 };
    let mut c = core_with(limits());
    let mut sent = Vec::new();
    for (token, n) in [(0u32, 3), (1, 2)] {
        c.push(write(token, n, t0, true));
        let out = c.send(t0, Ok(Some(a))).unwrap();
        sent.push((out.id, out.records.unwrap()));
    }
    let h: Vec<_> = sent.iter().map(|(_, r)| headers(r)[0]).collect();
    assert_eq!(
        (h[0].producer_id, h[0].producer_epoch, h[0].base_sequence),
        (42, 3, 0)
    );
    assert_eq!(h[1].base_sequence, 3);

    c.on_response(sent[0].0, Err(err(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)), t0);
    assert!(
        !drain(&mut c)
            .iter()
            .any(|e| matches!(e, Event::BumpEpoch(_))),
        "the bump waits for the batches still in flight"
    );
    c.on_response(sent[1].0, Err(err(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)), t0);
    assert!(matches!(drain(&mut c)[..], [Event::BumpEpoch(Some(x))] if x == a));
    assert!(
        !c.sendable(t0 + ms(500)),
        "nothing goes out under the old epoch"
    );

    c.epoch_bumped(Ok(()), t0 + ms(1));
    let t = t0 + ms(101);
    for (i, (id, old)) in sent.iter().enumerate() {
        let out = c.send(t, Ok(Some(b))).unwrap();
        assert_eq!(out.id, *id, "resent in the original order");
        let records = out.records.unwrap();
        let h = headers(&records)[0];
        assert_eq!((h.producer_id, h.producer_epoch), (42, 4));
        assert_eq!(h.base_sequence, [0, 3][i], "renumbered from 0");
        // Only the header changed: the (compressed) records are the same bytes.
        assert_eq!(records[61..], old[61..]);
        assert_ne!(h.crc, headers(old)[0].crc);
    }
    // A new batch continues the new numbering.
    c.push(write(2, 1, t, true));
    let h = headers(&c.send(t, Ok(Some(b))).unwrap().records.unwrap())[0];
    assert_eq!(h.base_sequence, 5);
}

#[test]
fn an_unknown_producer_in_a_later_batch_bumps_too_and_a_failed_bump_fails_the_batches() {
    let t0 = Instant::now();
    let a = ProducerIdentity { id: 1, epoch: 0 };
    let mut c = core_with(limits());
    let mut ids = Vec::new();
    for token in 0..2u32 {
        c.push(write(token, 1, t0, true));
        ids.push(c.send(t0, Ok(Some(a))).unwrap().id);
    }
    // A timeout alone would be resent as is; UNKNOWN_PRODUCER_ID behind it asks for a bump.
    c.on_response(ids[0], Err(err(codes::REQUEST_TIMED_OUT)), t0);
    c.on_response(ids[1], Err(err(codes::UNKNOWN_PRODUCER_ID)), t0);
    let events = drain(&mut c);
    assert!(matches!(
        events[..],
        [Event::Retrying { .. }, Event::BumpEpoch(Some(_))]
    ));
    c.epoch_bumped(Err(err(codes::CLUSTER_AUTHORIZATION_FAILED)), t0);
    assert_eq!(
        done_tokens(&drain(&mut c)),
        [(vec![0], None), (vec![1], None)]
    );
    c.close();
    assert!(c.is_finished());
}

#[test]
fn buffer_memory_stays_charged_until_the_outcome_is_known() {
    // The driver's tokens carry `buffer_memory` permits; a caller waits on the semaphore.
    let memory = Arc::new(tokio::sync::Semaphore::new(100));
    let t0 = Instant::now();
    let mut c = core_with(limits());
    let permit = memory.clone().try_acquire_many_owned(80).unwrap();
    c.push(write(permit, 5, t0, true));
    let out = c.send(t0, NO_ID).unwrap();
    assert!(
        memory.try_acquire_many(40).is_err(),
        "sent but not acknowledged: the next 40 bytes must wait"
    );
    c.on_response(out.id, Err(err(codes::NOT_LEADER_OR_FOLLOWER)), t0);
    assert_eq!(memory.available_permits(), 20, "a retry keeps the memory");
    drain(&mut c);
    let again = c.send(t0 + ms(100), NO_ID).unwrap();
    c.on_response(again.id, Ok(0), t0 + ms(101));
    let events = drain(&mut c);
    assert_eq!(memory.available_permits(), 20, "until the driver delivers");
    drop(events);
    assert_eq!(memory.available_permits(), 100);
    assert!(memory.try_acquire_many(40).is_ok());
}

#[test]
fn closing_sends_what_is_forming_without_lingering() {
    let t0 = Instant::now();
    let mut c = core_with(Limits {
        linger: Duration::from_secs(10),
        ..limits()
    });
    c.push(write(1, 1, t0, false));
    assert!(!c.sendable(t0));
    c.close();
    assert!(!c.accepts());
    assert!(!c.is_finished());
    let out = c.send(t0, NO_ID).unwrap();
    assert!(!c.is_finished(), "its answer is still out");
    c.on_response(out.id, Ok(9), t0);
    assert!(!c.is_finished(), "its outcome is not yet delivered");
    assert_eq!(done_tokens(&drain(&mut c)), [(vec![1], Some(9))]);
    assert!(c.is_finished());
}

#[test]
fn sequence_numbers_wrap_at_i32_max() {
    assert_eq!(wrap_seq(i32::MAX - 1, 3), 1);
    assert_eq!(wrap_seq(0, 5), 5);
}
