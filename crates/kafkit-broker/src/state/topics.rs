//! Topics and partitions: the registry every handler reads ([`Topics`]), the partition
//! state types, and the topic lifecycle on [`ClusterState`] (plan, create, grow, delete,
//! auto-create), which touches the registry, the replica directories and the saved list.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use kafkit_protocol::codes;
use tokio::sync::Notify;

use super::{java_string_hash, valid_topic_name, ClusterState, CreateTopicError};
use crate::log::PartitionLog;
use crate::BrokerError;

/// Leadership, ISR, high watermark and the replica logs of one partition, under one lock.
#[derive(Debug)]
pub struct PartitionInner {
    /// Leader node id, -1 while the partition is offline.
    pub leader: i32,
    /// Bumped at every leader change.
    pub leader_epoch: i32,
    /// In-sync replicas (the leader included).
    pub isr: Vec<i32>,
    /// Offset below which every ISR member has the records; consumers see only these.
    pub high_watermark: i64,
    /// Each replica's log, by node id.
    pub logs: BTreeMap<i32, PartitionLog>,
    /// When each follower was last fully caught up with the leader.
    pub caught_up_at: HashMap<i32, Instant>,
}

impl PartitionInner {
    /// The leader's log.
    pub fn leader_log(&self) -> Option<&PartitionLog> {
        self.logs.get(&self.leader)
    }

    /// The leader's log end offset.
    pub fn log_end(&self) -> i64 {
        self.leader_log().map_or(0, |l| l.next_offset())
    }

    /// Moves the high watermark to the lowest log end in the ISR. Returns true if it moved.
    pub fn update_high_watermark(&mut self) -> bool {
        let Some(min) = self
            .isr
            .iter()
            .filter_map(|b| self.logs.get(b))
            .map(|l| l.next_offset())
            .min()
        else {
            return false;
        };
        if min > self.high_watermark {
            self.high_watermark = min;
            true
        } else {
            false
        }
    }
}

/// A partition: its replicas and their shared state.
#[derive(Debug)]
pub struct PartitionState {
    /// Partition index.
    pub index: i32,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// Leadership, ISR and logs: taken through [`lock`](Self::lock) only, which keeps
    /// [`view`](Self::view) current.
    inner: Mutex<PartitionInner>,
    /// Leadership, ISR and high watermark as of the last release of `inner`: readable while
    /// an append or a read holds `inner` across the disk.
    shown: Mutex<PartitionView>,
    /// Woken when records are appended or the high watermark moves: the partition's long-poll
    /// fetches and acks=-1 writers wait on it (cluster-wide events use `ClusterState::changed`),
    /// so an append wakes only those who wait for this partition.
    pub data: Notify,
}

/// What Metadata, acks=-1 waits and the fetch poll need of a partition, without its logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionView {
    /// Leader node id, -1 while offline.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// High watermark.
    pub high_watermark: i64,
}

impl PartitionView {
    fn is_of(&self, inner: &PartitionInner) -> bool {
        self.leader == inner.leader
            && self.leader_epoch == inner.leader_epoch
            && self.high_watermark == inner.high_watermark
            && self.isr == inner.isr
    }
}

/// The partition's lock; when released, the view is brought up to date.
pub struct PartitionGuard<'a> {
    inner: MutexGuard<'a, PartitionInner>,
    shown: &'a Mutex<PartitionView>,
}

impl std::ops::Deref for PartitionGuard<'_> {
    type Target = PartitionInner;
    fn deref(&self) -> &PartitionInner {
        &self.inner
    }
}

impl std::ops::DerefMut for PartitionGuard<'_> {
    fn deref_mut(&mut self) -> &mut PartitionInner {
        &mut self.inner
    }
}

impl Drop for PartitionGuard<'_> {
    fn drop(&mut self) {
        let mut shown = self.shown.lock().expect("partition view lock");
        if !shown.is_of(&self.inner) {
            shown.leader = self.inner.leader;
            shown.leader_epoch = self.inner.leader_epoch;
            shown.high_watermark = self.inner.high_watermark;
            shown.isr.clone_from(&self.inner.isr);
        }
    }
}

impl PartitionState {
    pub(super) fn new(index: i32, replicas: Vec<i32>, inner: PartitionInner) -> Self {
        let shown = PartitionView {
            leader: inner.leader,
            leader_epoch: inner.leader_epoch,
            isr: inner.isr.clone(),
            high_watermark: inner.high_watermark,
        };
        Self {
            index,
            replicas,
            inner: Mutex::new(inner),
            shown: Mutex::new(shown),
            data: Notify::new(),
        }
    }

    /// Locks the partition state. Held across this partition's appends and reads (on
    /// blocking threads); code on the runtime's threads uses [`view`](Self::view) or
    /// [`try_lock`](Self::try_lock).
    pub fn lock(&self) -> PartitionGuard<'_> {
        PartitionGuard {
            inner: self.inner.lock().expect("partition lock"),
            shown: &self.shown,
        }
    }

    /// The lock if nobody holds it.
    pub fn try_lock(&self) -> Option<PartitionGuard<'_>> {
        match self.inner.try_lock() {
            Ok(inner) => Some(PartitionGuard {
                inner,
                shown: &self.shown,
            }),
            Err(std::sync::TryLockError::WouldBlock) => None,
            Err(std::sync::TryLockError::Poisoned(e)) => panic!("partition lock: {e}"),
        }
    }

    /// Leadership, ISR and high watermark as of the last time the lock was released; never
    /// waits for the disk.
    pub fn view(&self) -> PartitionView {
        self.shown.lock().expect("partition view lock").clone()
    }
}

/// A topic.
#[derive(Debug)]
pub struct TopicState {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: uuid::Uuid,
    /// Replicas per partition.
    pub replication_factor: i16,
    /// Partitions.
    pub partitions: Vec<Arc<PartitionState>>,
}

/// How far a restart moves every partition's leader epoch past the highest one saved or
/// stamped on a batch: up to this many elections whose epoch could not be saved (a full or
/// failing disk) are still below it, so no client sees an epoch go back (KIP-320: librdkafka
/// and the Java client ignore metadata older than what they have seen, and would keep
/// sending to a former leader). i32 leaves room for two million restarts.
pub const RESTART_EPOCH_GAP: i32 = 1000;

/// Every topic by name. Readers get snapshots (`get`, `all`, `all_partitions`); only the
/// topic lifecycle below changes the map: under `lifecycle` (one change at a time, on a
/// blocking thread), it does its disk work on a copy of the map, then publishes it with a
/// short write lock. Readers never wait for a disk.
#[derive(Debug, Default)]
pub struct Topics {
    map: RwLock<BTreeMap<String, Arc<TopicState>>>,
    lifecycle: Mutex<()>,
    /// The topic list changed but could not be saved yet (a full disk): the flush retries.
    pub(super) unsaved: AtomicBool,
}

impl Topics {
    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<TopicState>> {
        self.read().get(name).cloned()
    }

    /// A topic by id.
    pub fn by_id(&self, id: uuid::Uuid) -> Option<Arc<TopicState>> {
        self.read().values().find(|t| t.id == id).cloned()
    }

    /// Every topic, in name order.
    pub fn all(&self) -> Vec<Arc<TopicState>> {
        self.read().values().cloned().collect()
    }

    /// Every topic's name, in order.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<(String, Arc<PartitionState>)> {
        self.read()
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.clone())))
            .collect()
    }

    pub(super) fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<TopicState>>> {
        self.map.read().expect("topics lock")
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<TopicState>>> {
        self.map.write().expect("topics lock")
    }

    /// A copy of the map, to change and save before publishing.
    pub(super) fn snapshot(&self) -> BTreeMap<String, Arc<TopicState>> {
        self.read().clone()
    }

    /// Held by a topic change (create, grow, delete, re-save) across its disk work: changes
    /// go one at a time; nothing else takes it.
    pub(super) fn lifecycle(&self) -> MutexGuard<'_, ()> {
        self.lifecycle.lock().expect("topic lifecycle lock")
    }
}

impl ClusterState {
    fn partition_dir(&self, leader: i32, topic: &str, p: i32) -> PathBuf {
        self.data_dir
            .join(format!("broker-{leader}"))
            .join(format!("{topic}-{p}"))
    }

    /// Checks a topic to create and resolves -1 (defaults): `(partitions, replication factor)`.
    pub fn plan_topic(
        &self,
        name: &str,
        partitions: i32,
        rf: i16,
    ) -> Result<(i32, i16), CreateTopicError> {
        if !valid_topic_name(name) {
            return Err(CreateTopicError::InvalidName);
        }
        let partitions = if partitions == -1 {
            self.config.default_partitions
        } else {
            partitions
        };
        let rf = if rf == -1 {
            self.default_replication_factor()
        } else {
            rf
        };
        if !(1..=100_000).contains(&partitions) {
            return Err(CreateTopicError::InvalidPartitions);
        }
        if rf < 1 || rf as usize > self.brokers.len() {
            return Err(CreateTopicError::InvalidReplicationFactor);
        }
        if partitions as usize * rf as usize > self.config.max_partitions {
            return Err(CreateTopicError::TooManyPartitions);
        }
        if self.topics.read().contains_key(name) {
            return Err(CreateTopicError::AlreadyExists);
        }
        Ok((partitions, rf))
    }

    /// Refuses `more` replicas when the cluster would then hold over `max_partitions`.
    fn check_partition_budget(
        &self,
        topics: &BTreeMap<String, Arc<TopicState>>,
        more: usize,
    ) -> Result<(), CreateTopicError> {
        let have: usize = topics
            .values()
            .map(|t| t.partitions.len() * t.replication_factor.max(1) as usize)
            .sum();
        if have + more > self.config.max_partitions {
            tracing::warn!(target: "kafkit::broker", have, more, max_partitions = self.config.max_partitions, "refusing partitions: max.partitions reached");
            return Err(CreateTopicError::TooManyPartitions);
        }
        Ok(())
    }

    /// Removes what a failed create left on disk (on every broker: assignments may be
    /// manual).
    fn remove_partition_dirs(&self, name: &str, range: std::ops::Range<i32>) {
        for p in range {
            for b in &self.brokers {
                // Most brokers hold no replica of `p`: NotFound is expected.
                let _ = self
                    .config
                    .storage
                    .remove_dir_all(&self.partition_dir(b.id, name, p));
            }
        }
    }

    /// The replicas of partition `p`, leader first: leaders spread round-robin from a
    /// per-topic start, followers on the next brokers (Kafka's rack-unaware assignment,
    /// simplified). Deterministic, so not stored.
    fn replicas_for(&self, name: &str, p: i32, rf: i16) -> Vec<i32> {
        let n = self.brokers.len() as i32;
        let start = (java_string_hash(name) & 0x7fff_ffff) % n;
        (0..rf as i32)
            .map(|k| self.brokers[((start + p + k) % n) as usize].id)
            .collect()
    }

    /// A topic's state with its replica logs opened (`restart`: an existing topic loaded at
    /// startup) or created.
    pub(super) fn build_topic(
        &self,
        name: &str,
        partitions: i32,
        rf: i16,
        id: uuid::Uuid,
        manual: Option<&[Vec<i32>]>,
        restart: bool,
    ) -> Result<TopicState, BrokerError> {
        Ok(TopicState {
            name: name.to_owned(),
            id,
            replication_factor: rf,
            partitions: self.build_partitions(name, 0..partitions, rf, manual, restart)?,
        })
    }

    /// Opens (or creates) the replica logs of partitions `range` of a topic.
    fn build_partitions(
        &self,
        name: &str,
        range: std::ops::Range<i32>,
        rf: i16,
        manual: Option<&[Vec<i32>]>,
        restart: bool,
    ) -> Result<Vec<Arc<PartitionState>>, BrokerError> {
        let now = Instant::now();
        let mut parts = Vec::new();
        for p in range {
            let replicas = match manual.and_then(|m| m.get(p as usize)) {
                Some(r) => r.clone(),
                None => self.replicas_for(name, p, rf),
            };
            let mut logs = BTreeMap::new();
            for &r in &replicas {
                logs.insert(
                    r,
                    PartitionLog::open_shared(
                        &self.partition_dir(r, name, p),
                        self.log_config_for(name, r),
                        &self.files,
                    )?,
                );
            }
            // After a restart the replica with the longest log leads; longer logs elsewhere
            // cannot exist then, so nothing acknowledged is lost.
            let leader = *replicas
                .iter()
                .max_by_key(|r| {
                    (
                        logs[r].next_offset(),
                        std::cmp::Reverse(replicas.iter().position(|x| x == *r)),
                    )
                })
                .expect("at least one replica");
            let hw = replicas
                .iter()
                .map(|r| logs[r].next_offset())
                .min()
                .unwrap_or(0);
            // A (re)start is a leader election: the epoch goes past every one saved at a
            // leadership change or stamped on a batch, so it never goes back. An election
            // whose epoch could not be saved (a full disk: when leadership moves most) is
            // covered by the gap: a restart starts RESTART_EPOCH_GAP above what is known.
            // (Not saved here: a restart without leadership changes may hand out the same
            // epoch again, which clients accept; saving would cost a sync per partition.)
            let known = logs
                .values()
                .map(|l| l.known_leader_epoch())
                .max()
                .unwrap_or(-1);
            let leader_epoch = if restart {
                known.saturating_add(1 + RESTART_EPOCH_GAP)
            } else {
                known + 1
            };
            let mut inner = PartitionInner {
                leader,
                leader_epoch,
                isr: replicas.clone(),
                high_watermark: hw,
                logs,
                caught_up_at: replicas.iter().map(|r| (*r, now)).collect(),
            };
            inner.update_high_watermark();
            parts.push(Arc::new(PartitionState::new(p, replicas, inner)));
        }
        Ok(parts)
    }

    pub(super) fn save_topics(
        &self,
        topics: &BTreeMap<String, Arc<TopicState>>,
    ) -> std::io::Result<()> {
        let mut s = String::new();
        for t in topics.values() {
            s.push_str(&format!(
                "{} {} {} {}",
                t.name,
                t.partitions.len(),
                t.replication_factor,
                t.id
            ));
            let manual = t
                .partitions
                .iter()
                .any(|p| p.replicas != self.replicas_for(&t.name, p.index, t.replication_factor));
            if manual {
                let a: Vec<String> = t
                    .partitions
                    .iter()
                    .map(|p| {
                        p.replicas
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect();
                s.push_str(&format!(" a={}", a.join(";")));
            }
            s.push('\n');
        }
        self.config
            .storage
            .write_atomic(&self.data_dir.join("topics"), s.as_bytes())
    }

    /// Looks a topic up.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicState>> {
        self.topics.get(name)
    }

    /// Creates a topic (partitions/rf of -1 mean the defaults).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        rf: i16,
    ) -> Result<Arc<TopicState>, CreateTopicError> {
        let (partitions, rf) = self.plan_topic(name, partitions, rf)?;
        self.create(name, partitions, rf, None)
    }

    /// Checks a manual replica assignment (one broker list per partition, partition 0
    /// first): `(partitions, replication factor)`. INVALID_REPLICA_ASSIGNMENT when lists are
    /// empty, of different lengths, repeat a broker or name an unknown one.
    pub fn plan_assignment(
        &self,
        name: &str,
        assignment: &[Vec<i32>],
    ) -> Result<(i32, i16), CreateTopicError> {
        let rf = assignment.first().map_or(0, |a| a.len());
        if assignment.is_empty() || !self.valid_replica_lists(assignment, rf) {
            return Err(CreateTopicError::InvalidReplicaAssignment);
        }
        self.plan_topic(name, assignment.len() as i32, rf as i16)
    }

    /// Every list has `rf` (> 0) distinct, known brokers.
    fn valid_replica_lists(&self, lists: &[Vec<i32>], rf: usize) -> bool {
        rf > 0
            && lists.iter().all(|a| {
                a.len() == rf
                    && a.iter().all(|b| self.broker(*b).is_some())
                    && a.iter().collect::<HashSet<_>>().len() == a.len()
            })
    }

    /// Creates a topic with a manual replica assignment (see
    /// [`plan_assignment`](Self::plan_assignment)); the first broker of each list is the
    /// preferred leader.
    pub fn create_topic_assigned(
        &self,
        name: &str,
        assignment: &[Vec<i32>],
    ) -> Result<Arc<TopicState>, CreateTopicError> {
        let (partitions, rf) = self.plan_assignment(name, assignment)?;
        self.create(name, partitions, rf, Some(assignment))
    }

    fn create(
        &self,
        name: &str,
        partitions: i32,
        rf: i16,
        manual: Option<&[Vec<i32>]>,
    ) -> Result<Arc<TopicState>, CreateTopicError> {
        let _change = self.topics.lifecycle();
        let mut topics = self.topics.snapshot();
        if topics.contains_key(name) {
            return Err(CreateTopicError::AlreadyExists);
        }
        self.check_partition_budget(&topics, partitions as usize * rf as usize)?;
        let topic = self
            .build_topic(name, partitions, rf, uuid::Uuid::new_v4(), manual, false)
            .map_err(|e| {
                tracing::error!(target: "kafkit::broker", topic = name, error = %e, "creating topic failed");
                self.remove_partition_dirs(name, 0..partitions);
                CreateTopicError::Storage
            })?;
        let topic = Arc::new(topic);
        topics.insert(name.to_owned(), topic.clone());
        if let Err(e) = self.save_topics(&topics) {
            tracing::error!(target: "kafkit::broker", error = %e, "saving topic list failed");
            drop(topics);
            drop(topic);
            self.remove_partition_dirs(name, 0..partitions);
            return Err(CreateTopicError::Storage);
        }
        self.topics.write().insert(name.to_owned(), topic.clone());
        tracing::info!(target: "kafkit::broker", topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data. Err(UNKNOWN_TOPIC_OR_PARTITION) if there is none.
    ///
    /// On a full disk the new topic list cannot be written until space is freed, and the
    /// topic's own data is what frees it: then the data goes first and the list is saved
    /// after. Should even that fail, the topic stays deleted and the list is saved by the
    /// background flush (a crash before that brings the topic back, empty).
    pub fn delete_topic(&self, name: &str) -> Result<(), i16> {
        let _change = self.topics.lifecycle();
        let mut topics = self.topics.snapshot();
        let Some(topic) = topics.remove(name) else {
            return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
        };
        match self.save_topics(&topics) {
            Ok(()) => {
                self.topics.write().remove(name);
                self.remove_topic_data(&topic);
            }
            Err(e) if crate::storage::is_no_space(&e) => {
                tracing::warn!(target: "kafkit::broker", topic = name, error = %e, "disk full: deleting the topic's data before saving the topic list");
                self.topics.write().remove(name);
                self.remove_topic_data(&topic);
                if let Err(e) = self.save_topics(&topics) {
                    tracing::error!(target: "kafkit::broker", topic = name, error = %e, "saving topic list failed; retrying in the background");
                    self.topics.unsaved.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                // Nothing was published: the topic stays.
                tracing::error!(target: "kafkit::broker", error = %e, "saving topic list failed");
                return Err(CreateTopicError::Storage.code());
            }
        }
        if self.configs.remove_topic(name) {
            let _ = self
                .config
                .storage
                .remove_file(&self.data_dir.join("topic-configs").join(name));
        }
        tracing::info!(target: "kafkit::broker", topic = name, "deleted topic");
        self.changed.notify_waiters();
        Ok(())
    }

    fn remove_topic_data(&self, topic: &TopicState) {
        for p in &topic.partitions {
            for r in &p.replicas {
                let dir = self.partition_dir(*r, &topic.name, p.index);
                if let Err(e) = self.config.storage.remove_dir_all(&dir) {
                    tracing::warn!(target: "kafkit::broker", dir = %dir.display(), error = %e, "removing partition data failed");
                }
            }
        }
    }

    /// Grows a topic to `count` partitions (CreatePartitions); `assignment`, if given, has
    /// the replicas of each new partition (INVALID_REPLICA_ASSIGNMENT unless there is one list
    /// per new partition, each of the topic's replication factor, of known, distinct brokers).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignment: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), i16> {
        let _change = self.topics.lifecycle();
        let mut topics = self.topics.snapshot();
        let Some(old) = topics.get(name).cloned() else {
            return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
        };
        let have = old.partitions.len() as i32;
        if count <= have || count > 100_000 {
            return Err(CreateTopicError::InvalidPartitions.code());
        }
        self.check_partition_budget(
            &topics,
            (count - have) as usize * old.replication_factor.max(1) as usize,
        )
        .map_err(CreateTopicError::code)?;
        if let Some(a) = assignment {
            let rf = old.replication_factor.max(1) as usize;
            if a.len() != (count - have) as usize || !self.valid_replica_lists(a, rf) {
                return Err(CreateTopicError::InvalidReplicaAssignment.code());
            }
        }
        // `build_partitions` takes lists indexed by partition from 0.
        let manual: Option<Vec<Vec<i32>>> = assignment.map(|a| {
            old.partitions
                .iter()
                .map(|p| p.replicas.clone())
                .chain(a.iter().cloned())
                .collect()
        });
        if validate_only {
            return Ok(());
        }
        let added = self.build_partitions(name, have..count, old.replication_factor, manual.as_deref(), false).map_err(|e| {
            tracing::error!(target: "kafkit::broker", topic = name, error = %e, "adding partitions failed");
            self.remove_partition_dirs(name, have..count);
            CreateTopicError::Storage.code()
        })?;
        let mut partitions = old.partitions.clone();
        partitions.extend(added);
        let grown = TopicState {
            name: old.name.clone(),
            id: old.id,
            replication_factor: old.replication_factor,
            partitions,
        };
        let grown = Arc::new(grown);
        topics.insert(name.to_owned(), grown.clone());
        if let Err(e) = self.save_topics(&topics) {
            tracing::error!(target: "kafkit::broker", error = %e, "saving topic list failed");
            drop((topics, grown));
            self.remove_partition_dirs(name, have..count);
            return Err(CreateTopicError::Storage.code());
        }
        self.topics.write().insert(name.to_owned(), grown);
        tracing::info!(target: "kafkit::broker", topic = name, from = have, to = count, "added partitions");
        Ok(())
    }

    /// Gets a topic, creating it with defaults when auto-creation is on and `allow` is set.
    pub fn topic_or_create(&self, name: &str, allow: bool) -> Result<Arc<TopicState>, i16> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if !(allow && self.config.auto_create_topics) {
            return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
        }
        let (partitions, rf) = match self.plan_topic(name, -1, -1) {
            Ok(plan) => plan,
            Err(CreateTopicError::AlreadyExists) => {
                return self.topic(name).ok_or(codes::UNKNOWN_TOPIC_OR_PARTITION);
            }
            Err(e) => return Err(e.code()),
        };
        if !self.limits.take_auto_create(partitions as u32) {
            tracing::debug!(target: "kafkit::broker", topic = name, "auto-creation budget spent; answering LEADER_NOT_AVAILABLE");
            return Err(CreateTopicError::Throttled.code());
        }
        match self.create_topic(name, partitions, rf) {
            Ok(t) => {
                // At info: a topic that reappears after a delete was asked for by name.
                tracing::info!(target: "kafkit::broker", topic = name, partitions, replication_factor = rf, "auto-created topic");
                Ok(t)
            }
            Err(CreateTopicError::AlreadyExists) => {
                self.topic(name).ok_or(codes::UNKNOWN_TOPIC_OR_PARTITION)
            }
            Err(e) => Err(e.code()),
        }
    }
}
