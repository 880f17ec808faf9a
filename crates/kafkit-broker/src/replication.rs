//! Replication inside the embedded cluster: followers copy the leader's batches (same bytes,
//! same offsets) into their own logs; the leader keeps the in-sync replica set (ISR) and the
//! high watermark (HW).
//!
//! The brokers share one process, so a follower's "fetch" is a read of the leader's log under
//! the partition lock instead of a Fetch request over TCP. Followers that are up and reachable
//! copy each append as it happens (inside the produce request, `handler::produce::append`), so
//! the high watermark moves with the append; the background pass (`run`) catches up followers
//! that were down or cut off and keeps the ISR. Everything else follows Kafka:
//! a follower that has not caught up for `replica_lag_time_max` leaves the ISR, rejoins once
//! caught up; the HW is the lowest log end in the ISR; when a leader goes away the first live
//! ISR member takes over with a new leader epoch and replicas holding records past its log end
//! truncate them (they were never acknowledged to acks=-1 writers); a returning broker
//! truncates to the HW, then catches up.
//!
//! Disk failures (see `log`): a replica whose last write or sync failed leaves the ISR at
//! once — it cannot hold what acks=-1 promises — and rejoins when a write succeeds again and
//! it has caught up. A leader whose disk fails hands leadership to a healthy in-sync replica
//! when there is one (as Kafka moves leaders off an offline log directory); otherwise it
//! stays and answers KAFKA_STORAGE_ERROR until its disk recovers. A replica whose sync
//! failed drops what the sync covered and copies it again from the leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::state::{ClusterState, PartitionInner};

/// Most bytes copied per follower and pass.
const MAX_COPY_PER_PASS: usize = 16 * 1024 * 1024;

/// One replication pass over a partition. Returns true if the HW or ISR changed.
pub fn replicate_partition(
    state: &ClusterState,
    topic: &str,
    p: i32,
    inner: &mut PartitionInner,
    replicas: &[i32],
    now: Instant,
) -> bool {
    let mut changed = false;
    if inner.leader >= 0 && !healthy(inner, inner.leader) {
        let successor = inner
            .isr
            .iter()
            .copied()
            .find(|&r| r != inner.leader && state.is_alive(r) && healthy(inner, r));
        match successor {
            Some(r) => {
                tracing::warn!(target: "kafkit::broker", topic, partition = p, from = inner.leader, to = r, "leader's disk failed: moving leadership");
                set_leader(topic, p, inner, r);
                changed = true;
            }
            None => {
                if let Some(log) = inner.logs.get_mut(&inner.leader) {
                    if log.sync_failed() {
                        // No replica to copy from: keep what the page cache holds (a machine
                        // crash could lose it, as with any unsynced bytes).
                        tracing::error!(target: "kafkit::broker", topic, partition = p, "sync failed on the only in-sync replica; keeping its log");
                        log.clear_sync_failed();
                    }
                }
            }
        }
    }
    let leader = inner.leader;
    if leader < 0 || !state.is_alive(leader) {
        return changed;
    }
    let leader_end = inner.log_end();
    // Followers usually stand at the same offset: one read of the leader's log serves them all.
    let mut last_read: Option<(i64, bytes::Bytes)> = None;
    for &f in replicas {
        if f == leader || !state.is_alive(f) || state.is_cut(leader, f) {
            continue;
        }
        if inner.logs[&f].sync_failed() {
            let log = inner.logs.get_mut(&f).expect("replica log");
            match log.resync() {
                Ok(()) => {
                    tracing::info!(target: "kafkit::broker", topic, partition = p, follower = f, from = log.next_offset(), "copying again what a failed sync covered")
                }
                Err(e) => {
                    tracing::error!(target: "kafkit::broker", topic, partition = p, follower = f, error = %e, "truncation after a failed sync failed");
                    continue;
                }
            }
        }
        let mut copied = 0;
        loop {
            let from = inner.logs[&f].next_offset();
            if from >= leader_end || copied >= MAX_COPY_PER_PASS {
                break;
            }
            let cached = last_read
                .as_ref()
                .filter(|(at, _)| *at == from)
                .map(|(_, d)| d.clone());
            let data = match cached.map_or_else(
                || inner.logs[&leader].read(from, 1024 * 1024, true, leader_end),
                Ok,
            ) {
                Ok(d) if !d.is_empty() => {
                    last_read = Some((from, d.clone()));
                    d
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(target: "kafkit::broker", topic, partition = p, error = %e, "replication read failed");
                    break;
                }
            };
            copied += data.len();
            let log = inner.logs.get_mut(&f).expect("replica log");
            if let Err(e) = log.append_replicated(&data) {
                tracing::debug!(target: "kafkit::broker", topic, partition = p, follower = f, error = %e, "replication append failed");
                break;
            }
        }
        if inner.logs[&f].next_offset() >= leader_end {
            inner.caught_up_at.insert(f, now);
        }
    }
    // ISR shrink and expand.
    let lag_max = state.config.replica_lag_time_max;
    let before = inner.isr.clone();
    let caught_up_at = inner.caught_up_at.clone();
    let failed: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|&r| !healthy(inner, r))
        .collect();
    inner.isr.retain(|&r| {
        r == leader
            || (state.is_alive(r)
                && !failed.contains(&r)
                && caught_up_at
                    .get(&r)
                    .is_some_and(|t| now.duration_since(*t) <= lag_max))
    });
    for &r in replicas {
        if !inner.isr.contains(&r)
            && state.is_alive(r)
            && !failed.contains(&r)
            && inner.logs[&r].next_offset() >= leader_end
            && inner.high_watermark <= leader_end
        {
            inner.isr.push(r);
        }
    }
    if inner.isr != before {
        tracing::info!(target: "kafkit::broker", topic, partition = p, isr = ?inner.isr, was = ?before, "ISR changed");
        changed = true;
    }
    changed |= inner.update_high_watermark();
    changed
}

/// False while a replica's last write or sync failed.
fn healthy(inner: &PartitionInner, r: i32) -> bool {
    inner
        .logs
        .get(&r)
        .is_some_and(|l| l.failure().is_none() && !l.sync_failed())
}

/// One replication pass over every replicated partition: followers copy what they lack, the
/// ISR and high watermarks move. True if any records moved.
fn pass(state: &ClusterState) -> bool {
    let now = Instant::now();
    let (mut changed, mut isr_changed) = (false, false);
    for (topic, part) in state.all_partitions() {
        if part.replicas.len() < 2 {
            continue;
        }
        let mut inner = part.lock();
        let isr = inner.isr.clone();
        let moved = replicate_partition(state, &topic, part.index, &mut inner, &part.replicas, now);
        isr_changed |= inner.isr != isr;
        drop(inner);
        if moved {
            part.data.notify_waiters();
        }
        changed |= moved;
    }
    if isr_changed {
        state.changed.notify_waiters();
    }
    changed
}

/// Runs replication passes until shutdown: after every change and at least every 20 ms.
pub async fn run(state: Arc<ClusterState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let notified = state.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // The pass copies records between logs: on a blocking thread.
        let s = state.clone();
        let Some(changed) = crate::blocking::run(move || pass(&s)).await else {
            return; // the runtime is shutting down
        };
        if changed {
            continue;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Makes `new_leader` the leader: new epoch, other replicas truncated to its log end.
pub fn set_leader(topic: &str, p: i32, inner: &mut PartitionInner, new_leader: i32) {
    let old = inner.leader;
    inner.leader = new_leader;
    inner.leader_epoch += 1;
    if new_leader < 0 {
        tracing::warn!(target: "kafkit::broker", topic, partition = p, "partition offline: no live in-sync replica");
        return;
    }
    // Saved, so that a restart never hands out an older epoch (clients would take its
    // metadata for stale). If the disk refuses, the restart still goes past every epoch
    // stamped on a batch.
    if let Some(log) = inner.logs.get_mut(&new_leader) {
        if let Err(e) = log.save_leader_epoch(inner.leader_epoch) {
            tracing::warn!(target: "kafkit::broker", topic, partition = p, error = %e, "saving the leader epoch failed");
        }
    }
    let end = inner.logs[&new_leader].next_offset();
    for (r, log) in inner.logs.iter_mut() {
        if *r != new_leader && log.next_offset() > end {
            if let Err(e) = log.truncate_to(end) {
                tracing::error!(target: "kafkit::broker", topic, partition = p, replica = r, error = %e, "truncation failed");
            }
        }
    }
    if !inner.isr.contains(&new_leader) {
        inner.isr.push(new_leader);
    }
    // The new leader's HW may lag; it only moves forward from here.
    inner.high_watermark = inner.high_watermark.min(end);
    tracing::info!(target: "kafkit::broker", topic, partition = p, from = old, to = new_leader, epoch = inner.leader_epoch, "leader changed");
}
