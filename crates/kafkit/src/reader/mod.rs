//! The consumer.
//!
//! With a `group_id`, a background task keeps the reader a member of its consumer group: find
//! the coordinator, JoinGroup (the leader computes a range assignment), SyncGroup, fetch the
//! committed offsets (or `start_offset` where there are none), start one fetcher per assigned
//! partition, heartbeat. A rebalance (heartbeat answers REBALANCE_IN_PROGRESS) stops the
//! fetchers, drops prefetched messages of the old assignment (they were not committed, so their
//! new owner reads them), commits what the application has processed, and joins again.
//!
//! ## When offsets are committed
//! * [`Reader::read_message`] commits a message when the application asks for the *next* one
//!   (or calls [`Reader::close`]): returning from `read_message` is not taken as "processed".
//!   A crash while processing a message therefore redelivers it (at-least-once), unlike
//!   kafka-go's `ReadMessage`, which commits before the application has the message.
//! * [`Reader::fetch_message`] never commits; [`Reader::commit_messages`] commits exactly the
//!   messages given (offset + 1 per partition) and returns the broker's verdict.
//!
//! Prefetch is bounded: fetchers block when `queue_capacity` messages are waiting, so memory
//! stays bounded when the application is slow. Cooperative rebalancing, static membership and
//! more assignors come with issue 5.

pub mod assign;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafkit_protocol::batch::decode_records;
use kafkit_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafkit_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafkit_protocol::messages::leave_group_request::MemberIdentity;
use kafkit_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafkit_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafkit_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafkit_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafkit_protocol::messages::*;
use kafkit_protocol::{str_bytes, topic_name};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cluster::ClusterClient;
use crate::config::{ReaderConfig, StartOffset};
use crate::conn::{ConnConfig, Connection};
use crate::error::{Error, Result};
use crate::message::{Header, Message};

struct Fetched {
    epoch: u64,
    msg: Message,
}

#[derive(Default)]
struct Session {
    conn: Option<Arc<Connection>>,
    generation: i32,
    member_id: String,
    /// Partitions being fetched, with the offset fetching started at.
    assignment: BTreeMap<i32, i64>,
}

struct Shared {
    config: ReaderConfig,
    client: ClusterClient,
    /// Bumped whenever the assignment changes; prefetched messages of older epochs are dropped.
    epoch: AtomicU64,
    session: Mutex<Session>,
    /// Processed but not yet committed: partition → next offset.
    processed: Mutex<BTreeMap<i32, i64>>,
    /// Next offset the application gets, per partition (for `lag`).
    positions: Mutex<BTreeMap<i32, i64>>,
    /// High watermark from the latest fetch response, per partition.
    high_watermarks: Mutex<BTreeMap<i32, i64>>,
    counters: Counters,
    tx: mpsc::Sender<Fetched>,
}

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    fetches: AtomicU64,
    fetch_errors: AtomicU64,
    rebalances: AtomicU64,
    commits: AtomicU64,
}

/// What a reader has done so far (kafka-go's `Reader.Stats()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Messages handed to the application.
    pub messages: u64,
    /// Key + value + header bytes handed to the application.
    pub bytes: u64,
    /// Fetch responses received.
    pub fetches: u64,
    /// Fetches that failed (retried).
    pub fetch_errors: u64,
    /// Group generations joined.
    pub rebalances: u64,
    /// Successful offset commits.
    pub commits: u64,
    /// Sum of [`Reader::lag`] over the assigned partitions.
    pub lag: i64,
}

/// Reads messages from a topic, alone or as a member of a consumer group (the tutorial's
/// `kafka.Reader`).
///
/// ```no_run
/// # async fn f() -> kafkit::Result<()> {
/// use kafkit::{Reader, ReaderConfig};
/// let r = Reader::new(ReaderConfig {
///     brokers: vec!["localhost:9093".into()],
///     topic: "message-log".into(),
///     group_id: Some("my-group".into()),
///     ..Default::default()
/// })?;
/// let msg = r.read_message().await?;
/// println!("received: {:?}", msg.value);
/// r.close().await?;
/// # Ok(()) }
/// ```
pub struct Reader {
    shared: Arc<Shared>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Fetched>>,
    last: Mutex<Option<Message>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    close_tx: watch::Sender<bool>,
    seek_tx: watch::Sender<Option<i64>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("topic", &self.shared.config.topic)
            .field("group_id", &self.shared.config.group_id)
            .finish()
    }
}

impl Reader {
    /// Validates the config and starts the reader (group membership or partition fetcher) in the
    /// background. Must be called inside a tokio runtime.
    pub fn new(config: ReaderConfig) -> Result<Self> {
        config.validate()?;
        let client = ClusterClient::new(
            config.brokers.clone(),
            ConnConfig {
                client_id: config.client_id.clone(),
                dial_timeout: config.dial_timeout,
                request_timeout: Duration::from_secs(30),
            },
            true,
        );
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let shared = Arc::new(Shared {
            config,
            client,
            epoch: AtomicU64::new(0),
            session: Mutex::new(Session::default()),
            processed: Mutex::new(BTreeMap::new()),
            positions: Mutex::new(BTreeMap::new()),
            high_watermarks: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
            tx,
        });
        let (close_tx, close_rx) = watch::channel(false);
        let (seek_tx, seek_rx) = watch::channel(None);
        let task = if shared.config.group_id.is_some() {
            tokio::spawn(group_loop(shared.clone(), close_rx))
        } else {
            tokio::spawn(partition_loop(shared.clone(), close_rx, seek_rx))
        };
        Ok(Self {
            shared,
            rx: tokio::sync::Mutex::new(rx),
            last: Mutex::new(None),
            task: Mutex::new(Some(task)),
            close_tx,
            seek_tx,
        })
    }

    /// The next message; blocks until there is one. In a group, the message returned by the
    /// previous call is committed first (see the module docs).
    pub async fn read_message(&self) -> Result<Message> {
        let prev = self.last.lock().expect("last lock").take();
        if let Some(prev) = prev {
            self.mark(&prev);
            if let Err(e) = commit_processed(&self.shared).await {
                tracing::warn!(target: "kafkit::reader", error = %e, "commit failed; the messages will be delivered again after the rebalance");
            }
        }
        let m = self.fetch_message().await?;
        *self.last.lock().expect("last lock") = Some(m.clone());
        Ok(m)
    }

    /// The next message, without committing anything.
    pub async fn fetch_message(&self) -> Result<Message> {
        let mut rx = self.rx.lock().await;
        loop {
            let f = rx.recv().await.ok_or(Error::Closed)?;
            if f.epoch == self.shared.epoch.load(Ordering::Acquire) {
                let c = &self.shared.counters;
                c.messages.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(f.msg.size() as u64, Ordering::Relaxed);
                self.shared
                    .positions
                    .lock()
                    .expect("positions lock")
                    .insert(f.msg.partition, f.msg.offset + 1);
                return Ok(f.msg);
            }
        }
    }

    fn mark(&self, m: &Message) {
        let mut p = self.shared.processed.lock().expect("processed lock");
        let e = p.entry(m.partition).or_insert(m.offset + 1);
        *e = (*e).max(m.offset + 1);
    }

    /// Partitions currently assigned to this reader and the offsets their fetchers started at
    /// (empty while joining or rebalancing).
    pub fn assignment(&self) -> BTreeMap<i32, i64> {
        self.shared
            .session
            .lock()
            .expect("session lock")
            .assignment
            .clone()
    }

    /// Without a group: continue reading `partition` from `offset` (kafka-go's `SetOffset`).
    /// Nothing fetched before the call is returned after it.
    pub fn set_offset(&self, offset: i64) -> Result<()> {
        if self.shared.config.group_id.is_some() {
            return Err(Error::config(
                "group_id",
                "set_offset is for readers without a group (a group decides offsets)",
            ));
        }
        if offset < 0 {
            return Err(Error::config(
                "offset",
                format!("{offset} is negative; use start_offset for first/last"),
            ));
        }
        // Bump the epoch here, not in the background task: a read right after this call must
        // not return a message prefetched from the old position.
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
        self.seek_tx.send_replace(Some(offset));
        Ok(())
    }

    /// Messages between the application's position and the high watermark, per assigned
    /// partition (known once a fetch of that partition was answered).
    pub fn lag(&self) -> BTreeMap<i32, i64> {
        let assignment = self.assignment();
        let positions = self.shared.positions.lock().expect("positions lock");
        let hws = self.shared.high_watermarks.lock().expect("hw lock");
        assignment
            .iter()
            .filter_map(|(p, start)| {
                let hw = *hws.get(p)?;
                let pos = positions.get(p).copied().unwrap_or(*start).max(*start);
                Some((*p, (hw - pos).max(0)))
            })
            .collect()
    }

    /// Counters of what this reader has done.
    pub fn stats(&self) -> ReaderStats {
        let c = &self.shared.counters;
        ReaderStats {
            messages: c.messages.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            fetches: c.fetches.load(Ordering::Relaxed),
            fetch_errors: c.fetch_errors.load(Ordering::Relaxed),
            rebalances: c.rebalances.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            lag: self.lag().values().sum(),
        }
    }

    /// Commits these messages (offset + 1 for each partition's latest) and waits for the answer.
    pub async fn commit_messages(&self, messages: &[Message]) -> Result<()> {
        if self.shared.config.group_id.is_none() {
            return Err(Error::config(
                "group_id",
                "commit_messages needs a consumer group",
            ));
        }
        for m in messages {
            self.mark(m);
        }
        commit_processed(&self.shared).await
    }

    /// Commits the last message returned by `read_message` (and anything marked), leaves the
    /// group and stops. Returns within a few seconds even during a rebalance.
    pub async fn close(&self) -> Result<()> {
        if let Some(prev) = self.last.lock().expect("last lock").take() {
            self.mark(&prev);
        }
        let _ = self.close_tx.send(true);
        let task = self.task.lock().expect("task lock").take();
        if let Some(mut t) = task {
            if tokio::time::timeout(Duration::from_secs(10), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        Ok(())
    }
}

fn now_ms_to_time(ms: i64) -> Option<SystemTime> {
    (ms >= 0).then(|| UNIX_EPOCH + Duration::from_millis(ms as u64))
}

/// Commits `processed` with the current group session.
async fn commit_processed(shared: &Shared) -> Result<()> {
    let Some(group) = shared.config.group_id.clone() else {
        return Ok(());
    };
    let offsets: BTreeMap<i32, i64> =
        std::mem::take(&mut *shared.processed.lock().expect("processed lock"));
    if offsets.is_empty() {
        return Ok(());
    }
    let (conn, generation, member_id) = {
        let s = shared.session.lock().expect("session lock");
        (s.conn.clone(), s.generation, s.member_id.clone())
    };
    let restore = |shared: &Shared, offsets: &BTreeMap<i32, i64>| {
        let mut p = shared.processed.lock().expect("processed lock");
        for (k, v) in offsets {
            let e = p.entry(*k).or_insert(*v);
            *e = (*e).max(*v);
        }
    };
    let Some(conn) = conn else {
        restore(shared, &offsets);
        return Err(Error::kafka(
            27,
            format!("commit for group {group}: not a member right now"),
        ));
    };
    let topic = &shared.config.topic;
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(&group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str_bytes(&member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(p, o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_metadata(Some(str_bytes("")))
                    })
                    .collect(),
            )]);
    let resp = match conn.send(&req).await {
        Ok((_, r)) => r,
        Err(e) => {
            restore(shared, &offsets);
            return Err(e);
        }
    };
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                let e = Error::kafka(
                    p.error_code,
                    format!("commit {topic}/{} for group {group}", p.partition_index),
                );
                if e.is_retriable() {
                    restore(shared, &offsets);
                }
                return Err(e);
            }
        }
    }
    let list: Vec<String> = offsets
        .iter()
        .map(|(p, o)| format!("partition {p}: {o}"))
        .collect();
    shared.counters.commits.fetch_add(1, Ordering::Relaxed);
    tracing::info!(target: "kafkit::reader", "committed offsets for group {group}: topic: {topic} {}", list.join(", "));
    Ok(())
}

async fn list_offset(
    client: &ClusterClient,
    topic: &str,
    partition: i32,
    start: StartOffset,
) -> Result<i64> {
    let ts = match start {
        StartOffset::First => -2,
        StartOffset::Last => -1,
        StartOffset::Timestamp(t) => t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    };
    let addr = client.leader_addr(topic, partition).await?;
    let conn = client.conn(&addr).await?;
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(ts)])]);
    let (_, resp) = conn.send(&req).await?;
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| {
            Error::kafka(
                -1,
                format!("empty ListOffsets answer for {topic}/{partition}"),
            )
        })?;
    if p.error_code != 0 {
        client.invalidate(topic);
        return Err(Error::kafka(
            p.error_code,
            format!("ListOffsets {topic}/{partition}"),
        ));
    }
    if p.offset < 0 && matches!(start, StartOffset::Timestamp(_)) {
        // Every message is older than the timestamp: start at the end.
        return Box::pin(list_offset(client, topic, partition, StartOffset::Last)).await;
    }
    Ok(p.offset)
}

/// Fetches one partition from `offset` into the queue until aborted.
async fn fetcher(shared: Arc<Shared>, partition: i32, mut offset: i64, epoch: u64) {
    let cfg = &shared.config;
    let topic = &cfg.topic;
    let mut conn: Option<Connection> = None;
    let mut backoff = Duration::from_millis(50);
    tracing::info!(target: "kafkit::reader", "initializing kafka reader for partition {partition} of {topic} starting at offset {offset}");
    loop {
        let addr = match shared.client.leader_addr(topic, partition).await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(target: "kafkit::reader", topic = %topic, partition, error = %e, "no leader yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if conn
            .as_ref()
            .is_none_or(|c| c.addr() != addr || !c.is_alive())
        {
            match shared.client.dedicated(&addr).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(target: "kafkit::reader", error = %e, "fetch connection failed");
                    shared.client.invalidate(topic);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let c = conn.as_ref().expect("connected");
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(cfg.max_wait.as_millis() as i32)
            .with_min_bytes(cfg.min_bytes as i32)
            .with_max_bytes(cfg.max_bytes as i32)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(cfg.max_bytes as i32)])]);
        let resp = match c
            .send_timeout(&req, cfg.max_wait + Duration::from_secs(30))
            .await
        {
            Ok((_, r)) => r,
            Err(e) => {
                shared.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "kafkit::reader", topic = %topic, partition, error = %e, "fetch failed; retrying");
                conn = None;
                shared.client.invalidate(topic);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let Some(pd) = resp
            .responses
            .into_iter()
            .next()
            .and_then(|t| t.partitions.into_iter().next())
        else {
            continue;
        };
        shared.counters.fetches.fetch_add(1, Ordering::Relaxed);
        if pd.high_watermark >= 0 {
            shared
                .high_watermarks
                .lock()
                .expect("hw lock")
                .insert(partition, pd.high_watermark);
        }
        match pd.error_code {
            0 => backoff = Duration::from_millis(50),
            1 => {
                // OFFSET_OUT_OF_RANGE: reset as start_offset says.
                match list_offset(&shared.client, topic, partition, cfg.start_offset).await {
                    Ok(o) => {
                        tracing::warn!(target: "kafkit::reader", topic = %topic, partition, from = offset, to = o, "offset out of range; reset");
                        offset = o;
                    }
                    Err(_) => tokio::time::sleep(backoff).await,
                }
                continue;
            }
            code => {
                tracing::debug!(target: "kafkit::reader", topic = %topic, partition, code, "fetch error; refreshing metadata");
                shared.client.invalidate(topic);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        }
        let Some(data) = pd.records else { continue };
        let records = match decode_records(&data) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(target: "kafkit::reader", topic = %topic, partition, offset, error = %e, "undecodable records; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        for r in records {
            if r.offset < offset {
                continue;
            }
            offset = r.offset + 1;
            let msg = Message {
                topic: topic.clone(),
                partition,
                offset: r.offset,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| Header {
                        key: k.to_string(),
                        value: v,
                    })
                    .collect(),
                time: now_ms_to_time(r.timestamp),
            };
            if shared.tx.send(Fetched { epoch, msg }).await.is_err() {
                return;
            }
        }
    }
}

/// Without a group: read one partition from `start_offset`, or from where `set_offset` says.
async fn partition_loop(
    shared: Arc<Shared>,
    mut close: watch::Receiver<bool>,
    mut seek: watch::Receiver<Option<i64>>,
) {
    let cfg = &shared.config;
    let mut start = loop {
        if let Some(o) = *seek.borrow_and_update() {
            break o;
        }
        match list_offset(&shared.client, &cfg.topic, cfg.partition, cfg.start_offset).await {
            Ok(o) => break o,
            Err(e) => {
                tracing::warn!(target: "kafkit::reader", error = %e, "cannot find start offset; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = close.changed() => return,
                    _ = seek.changed() => {}
                }
            }
        }
    };
    loop {
        let epoch = shared.epoch.load(Ordering::Acquire);
        shared.session.lock().expect("session lock").assignment =
            BTreeMap::from([(cfg.partition, start)]);
        shared
            .positions
            .lock()
            .expect("positions lock")
            .insert(cfg.partition, start);
        tokio::select! {
            _ = fetcher(shared.clone(), cfg.partition, start, epoch) => return,
            _ = close.changed() => return,
            r = seek.changed() => {
                if r.is_err() {
                    return;
                }
                if let Some(o) = *seek.borrow_and_update() {
                    tracing::info!(target: "kafkit::reader", partition = cfg.partition, offset = o, "seeking");
                    start = o;
                }
            }
        }
    }
}

enum Outcome {
    Rejoin,
    Closed,
}

async fn group_loop(shared: Arc<Shared>, mut close: watch::Receiver<bool>) {
    let group = shared.config.group_id.clone().expect("group");
    let mut member_id = String::new();
    let mut backoff = Duration::from_millis(100);
    tracing::info!(target: "kafkit::reader", "entering loop for consumer group, {group}");
    loop {
        if *close.borrow() {
            break;
        }
        match generation(&shared, &group, &mut member_id, &mut close).await {
            Ok(Outcome::Closed) => break,
            Ok(Outcome::Rejoin) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "group membership failed; retrying");
                shared.session.lock().expect("session lock").conn = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = close.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    // Closing: commit what was processed, then leave so the group rebalances at once.
    if let Err(e) = commit_processed(&shared).await {
        tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "final commit failed");
    }
    let conn = shared.session.lock().expect("session lock").conn.take();
    if let (Some(conn), false) = (conn, member_id.is_empty()) {
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(&group)));
        match conn.version_for::<LeaveGroupRequest>() {
            Ok(v) if v >= 3 => {
                req.members = vec![MemberIdentity::default().with_member_id(str_bytes(&member_id))]
            }
            _ => req.member_id = str_bytes(&member_id),
        }
        match tokio::time::timeout(Duration::from_secs(5), conn.send(&req)).await {
            Ok(Ok(_)) => {
                tracing::info!(target: "kafkit::reader", "left group {group} as member {member_id}")
            }
            other => {
                tracing::warn!(target: "kafkit::reader", group = %group, "leaving group failed: {:?}", other.map(|r| r.err()))
            }
        }
    }
}

/// Waits for `fut` unless the reader is closed first.
async fn unless_closed<T>(
    close: &mut watch::Receiver<bool>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    if *close.borrow() {
        return None;
    }
    tokio::select! {
        r = fut => Some(r),
        _ = close.changed() => None,
    }
}

/// One generation: join, sync, fetch until a rebalance or close.
async fn generation(
    shared: &Arc<Shared>,
    group: &str,
    member_id: &mut String,
    close: &mut watch::Receiver<bool>,
) -> Result<Outcome> {
    let cfg = &shared.config;
    let Some(addr) = unless_closed(close, shared.client.coordinator(group)).await else {
        return Ok(Outcome::Closed);
    };
    let addr = addr?;
    let Some(conn) = unless_closed(close, shared.client.dedicated(&addr)).await else {
        return Ok(Outcome::Closed);
    };
    let conn = Arc::new(conn?);
    let topics = vec![cfg.topic.clone()];

    // JoinGroup (again with the id the broker gives, if it answers MEMBER_ID_REQUIRED).
    let join = loop {
        let mut req = JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_session_timeout_ms(cfg.session_timeout.as_millis() as i32)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(str_bytes("range"))
                .with_metadata(assign::encode_subscription(&topics))]);
        if conn.version_for::<JoinGroupRequest>()? >= 1 {
            req.rebalance_timeout_ms = cfg.rebalance_timeout.as_millis() as i32;
        }
        let wait = cfg.rebalance_timeout + cfg.session_timeout;
        let Some(r) = unless_closed(close, conn.send_timeout(&req, wait)).await else {
            return Ok(Outcome::Closed);
        };
        let (_, resp) = r?;
        match resp.error_code {
            0 => break resp,
            79 => *member_id = resp.member_id.to_string(),
            25 => {
                member_id.clear();
                return Err(Error::kafka(25, format!("JoinGroup {group}")));
            }
            code => return Err(Error::kafka(code, format!("JoinGroup {group}"))),
        }
    };
    *member_id = join.member_id.to_string();
    let generation_id = join.generation_id;
    tracing::info!(target: "kafkit::reader", "joined group {group} as member {member_id} in generation {generation_id}");

    // The leader assigns.
    let mut assignments = Vec::new();
    if join.leader == join.member_id {
        tracing::info!(target: "kafkit::reader", "selected as leader for group, {group}");
        let mut members = Vec::new();
        let mut all_topics = Vec::new();
        for m in &join.members {
            let subs = assign::decode_subscription(m.metadata.clone()).unwrap_or_default();
            tracing::info!(target: "kafkit::reader", "found member: {} subscribed to {:?}", m.member_id, subs);
            all_topics.extend(subs.iter().cloned());
            members.push((m.member_id.to_string(), subs));
        }
        all_topics.sort();
        all_topics.dedup();
        shared.client.refresh(&all_topics).await?;
        let mut partitions = BTreeMap::new();
        for t in &all_topics {
            partitions.insert(
                t.clone(),
                shared.client.topic(t).await?.leaders.len() as i32,
            );
        }
        tracing::info!(target: "kafkit::reader", "using 'range' balancer to assign group, {group}");
        for (m, a) in assign::range_assign(&members, &partitions) {
            tracing::info!(target: "kafkit::reader", "assigned member/topic/partitions {m}/{a:?}");
            assignments.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(&m))
                    .with_assignment(assign::encode_assignment(&a)),
            );
        }
    }
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id(generation_id)
        .with_member_id(str_bytes(member_id))
        .with_assignments(assignments);
    let Some(r) = unless_closed(
        close,
        conn.send_timeout(&req, cfg.rebalance_timeout + cfg.session_timeout),
    )
    .await
    else {
        return Ok(Outcome::Closed);
    };
    let (_, sync) = r?;
    match sync.error_code {
        0 => {}
        27 | 22 => return Ok(Outcome::Rejoin),
        25 => {
            member_id.clear();
            return Ok(Outcome::Rejoin);
        }
        code => return Err(Error::kafka(code, format!("SyncGroup {group}"))),
    }
    let assigned = assign::decode_assignment(sync.assignment.clone())
        .ok_or_else(|| Error::kafka(-1, format!("undecodable assignment for group {group}")))?;
    let mine: Vec<i32> = assigned.get(&cfg.topic).cloned().unwrap_or_default();
    tracing::info!(target: "kafkit::reader", "sync group finished for group, {group}: assigned {}/{mine:?}", cfg.topic);
    {
        let mut s = shared.session.lock().expect("session lock");
        s.conn = Some(conn.clone());
        s.generation = generation_id;
        s.member_id = member_id.clone();
    }

    // Where to start each partition.
    let mut starts = HashMap::new();
    if !mine.is_empty() {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(&cfg.topic))
                .with_partition_indexes(mine.clone())]));
        let (_, resp) = conn.send(&req).await?;
        if resp.error_code != 0 {
            return Err(Error::kafka(
                resp.error_code,
                format!("OffsetFetch {group}"),
            ));
        }
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    return Err(Error::kafka(
                        p.error_code,
                        format!("OffsetFetch {group} {}/{}", cfg.topic, p.partition_index),
                    ));
                }
                if p.committed_offset >= 0 {
                    starts.insert(p.partition_index, p.committed_offset);
                }
            }
        }
        for &p in &mine {
            if let std::collections::hash_map::Entry::Vacant(e) = starts.entry(p) {
                e.insert(list_offset(&shared.client, &cfg.topic, p, cfg.start_offset).await?);
            }
        }
        tracing::info!(target: "kafkit::reader", "subscribed to partitions: {starts:?}");
    }

    // Fetch and heartbeat until something changes.
    let epoch = shared.epoch.fetch_add(1, Ordering::AcqRel) + 1;
    shared.counters.rebalances.fetch_add(1, Ordering::Relaxed);
    shared.session.lock().expect("session lock").assignment =
        starts.iter().map(|(p, o)| (*p, *o)).collect();
    {
        let mut positions = shared.positions.lock().expect("positions lock");
        positions.clear();
        positions.extend(starts.iter().map(|(p, o)| (*p, *o)));
    }
    let mut fetchers = JoinSet::new();
    for (&p, &o) in &starts {
        fetchers.spawn(fetcher(shared.clone(), p, o, epoch));
    }
    tracing::info!(target: "kafkit::reader", "started heartbeat for group, {group} [{:?}]", cfg.heartbeat_interval);
    let mut tick = tokio::time::interval(cfg.heartbeat_interval);
    tick.tick().await;
    let outcome = loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = close.changed() => break Ok(Outcome::Closed),
        }
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(member_id));
        match conn.send(&req).await {
            Ok((_, r)) => match r.error_code {
                0 => {}
                27 => {
                    tracing::info!(target: "kafkit::reader", "group {group} is rebalancing; rejoining");
                    break Ok(Outcome::Rejoin);
                }
                22 => break Ok(Outcome::Rejoin),
                25 => {
                    member_id.clear();
                    break Ok(Outcome::Rejoin);
                }
                code => break Err(Error::kafka(code, format!("Heartbeat {group}"))),
            },
            Err(e) => break Err(e),
        }
    };
    // Revoke: nothing from this assignment is delivered after this point.
    shared.epoch.fetch_add(1, Ordering::AcqRel);
    shared
        .session
        .lock()
        .expect("session lock")
        .assignment
        .clear();
    fetchers.abort_all();
    while fetchers.join_next().await.is_some() {}
    if !matches!(outcome, Ok(Outcome::Closed)) {
        if let Err(e) = commit_processed(shared).await {
            tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "commit before rejoining failed");
        }
    }
    outcome
}
