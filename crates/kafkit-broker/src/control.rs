//! Fault injection for tests: take brokers down and up, move leaders, inject error codes, delay
//! responses, cut replication between brokers. The model is librdkafka's mock cluster and
//! franz-go's kfake; unlike them, leadership moves with real replicated data.
//!
//! ```no_run
//! # async fn f() -> Result<(), kafkit_broker::BrokerError> {
//! let cluster = kafkit_broker::Cluster::builder().brokers(3).start().await?;
//! cluster.create_topic("t", 3)?;
//! let control = cluster.control();
//! let leader = control.leader("t", 0).unwrap();
//! control.broker_down(leader);             // connections close, leadership moves
//! control.inject_error(0, 6, 2, None);     // next 2 Produce requests: NOT_LEADER_OR_FOLLOWER
//! control.broker_up(leader);               // truncates to the HW, catches up, rejoins the ISR
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::replication::{replicate_partition, set_leader};
use crate::state::ClusterState;
use crate::BrokerError;

pub use crate::faults::{Faults, InjectedError};

/// A handle for injecting faults into a running cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    pub(crate) state: Arc<ClusterState>,
}

impl Control {
    /// Takes a broker down: its connections close, new ones are refused, and partitions it
    /// led move to another in-sync replica.
    pub fn broker_down(&self, id: i32) {
        if !self.state.liveness.set_down(id) {
            return;
        }
        for (topic, part) in self.state.all_partitions() {
            if !part.replicas.contains(&id) {
                continue;
            }
            let mut inner = part.lock();
            inner.isr.retain(|r| *r != id);
            if inner.leader == id {
                let next = inner
                    .isr
                    .iter()
                    .copied()
                    .find(|r| self.state.is_alive(*r))
                    .unwrap_or(-1);
                set_leader(&topic, part.index, &mut inner, next);
            }
            inner.update_high_watermark();
        }
        tracing::warn!(target: "kafkit::broker", broker = id, "broker taken down");
        self.state.changed.notify_waiters();
    }

    /// Brings a broker back: its replicas truncate to the high watermark and catch up; offline
    /// partitions it holds get it as leader.
    pub fn broker_up(&self, id: i32) {
        if self.state.broker(id).is_none() {
            return;
        }
        for (topic, part) in self.state.all_partitions() {
            if !part.replicas.contains(&id) {
                continue;
            }
            let mut inner = part.lock();
            if inner.leader < 0 {
                inner.isr = vec![id];
                set_leader(&topic, part.index, &mut inner, id);
                inner.update_high_watermark();
            } else if inner.leader != id {
                let hw = inner.high_watermark;
                if let Some(log) = inner.logs.get_mut(&id) {
                    if let Err(e) = log.truncate_to(hw) {
                        tracing::error!(target: "kafkit::broker", topic, error = %e, "truncation failed");
                    }
                }
            }
        }
        self.state.liveness.set_up(id);
        tracing::warn!(target: "kafkit::broker", broker = id, "broker back up");
        self.state.changed.notify_waiters();
    }

    /// Makes `to` (a live in-sync replica) the leader of a partition, after letting it catch up.
    pub fn move_leader(&self, topic: &str, partition: i32, to: i32) -> Result<(), BrokerError> {
        let t = self
            .state
            .topic(topic)
            .ok_or_else(|| BrokerError::Config(format!("no topic {topic}")))?;
        let part = t
            .partitions
            .get(partition as usize)
            .ok_or_else(|| BrokerError::Config(format!("no partition {topic}/{partition}")))?;
        let mut inner = part.lock();
        replicate_partition(
            &self.state,
            topic,
            partition,
            &mut inner,
            &part.replicas,
            Instant::now(),
        );
        if !inner.isr.contains(&to) || !self.state.is_alive(to) {
            return Err(BrokerError::Config(format!(
                "broker {to} is not a live in-sync replica of {topic}/{partition} (ISR {:?})",
                inner.isr
            )));
        }
        if inner.leader != to {
            set_leader(topic, partition, &mut inner, to);
        }
        drop(inner);
        self.state.changed.notify_waiters();
        Ok(())
    }

    /// Answers the next `count` requests with `api_key` (on `broker`, or any) with `code`
    /// instead of serving them.
    pub fn inject_error(&self, api_key: i16, code: i16, count: usize, broker: Option<i32>) {
        let mut f = self.state.faults.lock().expect("faults lock");
        for _ in 0..count {
            f.errors.push_back(InjectedError {
                api_key,
                broker,
                code,
            });
        }
    }

    /// Serves the next `count` requests with `api_key` (on `broker`, or any) but closes the
    /// connection instead of answering: the client cannot know the request took effect (the
    /// case idempotent producers exist for).
    pub fn drop_responses(&self, api_key: i16, count: usize, broker: Option<i32>) {
        let mut f = self.state.faults.lock().expect("faults lock");
        for _ in 0..count {
            f.drops.push_back((api_key, broker));
        }
    }

    /// Delays every response (of `api_key`, on `broker`; `None` = all) by `delay`.
    pub fn delay(&self, api_key: Option<i16>, broker: Option<i32>, delay: Duration) {
        self.state
            .faults
            .lock()
            .expect("faults lock")
            .delays
            .push((api_key, broker, delay));
    }

    /// Forgets every broker's fetch sessions (KIP-227), as restarted brokers would: clients
    /// get FETCH_SESSION_ID_NOT_FOUND and must start new ones.
    pub fn drop_fetch_sessions(&self) {
        for cache in self.state.fetch_sessions.values() {
            cache.lock().expect("fetch sessions lock").clear();
        }
    }

    /// Incremental fetch requests served by all brokers, and the partitions they carried.
    pub fn fetch_session_stats(&self) -> (u64, u64) {
        self.state
            .fetch_sessions
            .values()
            .map(|c| c.lock().expect("fetch sessions lock").incremental)
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// Removes injected errors and delays.
    pub fn clear_faults(&self) {
        *self.state.faults.lock().expect("faults lock") = Faults::default();
    }

    /// Stops replication between two brokers (in both directions).
    pub fn cut_replication(&self, a: i32, b: i32) {
        self.state.liveness.cut(a, b);
    }

    /// Restores replication between two brokers.
    pub fn heal_replication(&self, a: i32, b: i32) {
        self.state.liveness.heal(a, b);
        self.state.changed.notify_waiters();
    }

    /// Current leader of a partition (-1: offline).
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        Some(
            self.state
                .topic(topic)?
                .partitions
                .get(partition as usize)?
                .lock()
                .leader,
        )
    }

    /// Current ISR of a partition.
    pub fn isr(&self, topic: &str, partition: i32) -> Option<Vec<i32>> {
        Some(
            self.state
                .topic(topic)?
                .partitions
                .get(partition as usize)?
                .lock()
                .isr
                .clone(),
        )
    }

    /// High watermark of a partition.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        Some(
            self.state
                .topic(topic)?
                .partitions
                .get(partition as usize)?
                .lock()
                .high_watermark,
        )
    }

    /// Log end offset of each replica of a partition.
    pub fn replica_ends(&self, topic: &str, partition: i32) -> Option<Vec<(i32, i64)>> {
        let t = self.state.topic(topic)?;
        let inner = t.partitions.get(partition as usize)?.lock();
        Some(
            inner
                .logs
                .iter()
                .map(|(r, l)| (*r, l.next_offset()))
                .collect(),
        )
    }
}
