//! The consumer.
//!
//! With a `group_id`, a background task keeps the reader a member of its consumer group: find
//! the coordinator, JoinGroup (offering `group_balancers` in preference order), the leader
//! assigns with the protocol the group chose (range, roundrobin or cooperative-sticky),
//! SyncGroup, fetch the committed offsets (or `start_offset` where there are none), hand the
//! new partitions to the fetch loops (one per broker, see `fetch`), heartbeat.
//!
//! ## Rebalances
//! * Eager protocols (range, roundrobin): when the group rebalances, every partition is
//!   revoked before rejoining — fetchers stop, prefetched messages are dropped (they were not
//!   committed, so the next owner reads them), what the application processed is committed.
//! * cooperative-sticky (KIP-429): the reader rejoins while its fetchers keep running, and only
//!   the partitions the new assignment takes away are revoked (then it rejoins once more so the
//!   group can hand them to their new owner). Partitions that keep their owner flow through the
//!   rebalance.
//!
//! Either way nothing from a revoked partition is returned after the revocation: every
//! prefetched message carries its partition's fetch epoch, and revoking retires the epoch.
//!
//! ## When offsets are committed
//! * [`Reader::read_message`] with `commit_interval` zero (the default) commits a message
//!   when the application asks for the *next* one (or calls [`Reader::close`]): returning from
//!   `read_message` is not taken as "processed". A crash while processing a message therefore
//!   redelivers it (at-least-once), unlike kafka-go's `ReadMessage`, which commits before the
//!   application has the message. With a positive `commit_interval` the previous message is
//!   marked instead, and marked offsets are committed every interval, before partitions are
//!   revoked, and on close.
//! * [`Reader::fetch_message`] never commits; [`Reader::commit_messages`] commits exactly the
//!   messages given (offset + 1 per partition) and returns the broker's verdict.
//!
//! A [`RebalanceListener`] (`rebalance_listener`) hears `on_assigned`, `on_revoked` and
//! `on_lost` and is awaited, so an application that commits by hand commits before its
//! partitions move.
//!
//! Prefetch is bounded by bytes (`max_buffered_bytes`, `max_partition_bytes`) and messages
//! (`queue_capacity`) over all partitions, so memory stays bounded when the application is slow,
//! whatever the partition count.

pub mod assign;
mod fetch;
mod listener;

pub use listener::{Listener, ListenerFuture, Rebalance, RebalanceListener};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafkit_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafkit_protocol::messages::leave_group_request::MemberIdentity;
use kafkit_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafkit_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafkit_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafkit_protocol::messages::*;
use kafkit_protocol::{str_bytes, topic_name};
use tokio::sync::{mpsc, watch};

use crate::cluster::ClusterClient;
use crate::config::{GroupBalancer, ReaderConfig, StartOffset};
use crate::conn::{ConnConfig, Connection};
use crate::error::{Error, Result};
use crate::message::Message;

/// A topic-partition: the topic's index in the reader's topic list, and the partition.
type Tp = (usize, i32);

/// Prefetched messages of one partition, or a partition's fatal error, with the fetch epoch
/// they belong to.
enum Fetched {
    Batch(fetch::Batch),
    Error { tp: Tp, epoch: u64, error: Error },
}

#[derive(Default)]
struct Session {
    /// Connection to the coordinator for JoinGroup, SyncGroup, Heartbeat.
    conn: Option<Arc<Connection>>,
    /// A second connection for commits: a broker answers a connection's requests in order, so
    /// a commit sent behind a JoinGroup that waits for the other members would wait as long.
    commit_conn: Option<Arc<Connection>>,
    generation: i32,
    member_id: String,
    /// Partitions being fetched, with the offset fetching started at.
    assignment: BTreeMap<Tp, i64>,
}

struct Shared {
    config: ReaderConfig,
    /// The topics read: `group_topics`, or `topic` alone.
    topics: Vec<String>,
    client: ClusterClient,
    next_epoch: AtomicU64,
    /// Fetch epoch of every partition being read; messages of other epochs are dropped.
    epochs: Mutex<HashMap<Tp, u64>>,
    session: Mutex<Session>,
    /// Processed but not yet committed: partition → next offset.
    processed: Mutex<BTreeMap<Tp, i64>>,
    /// Next offset the application gets, per partition (for `lag`).
    positions: Mutex<BTreeMap<Tp, i64>>,
    /// High watermark from the latest fetch response, per partition.
    high_watermarks: Mutex<BTreeMap<Tp, i64>>,
    counters: Counters,
    /// The broker fetch loops and the buffer accounting.
    fetch: fetch::Fetcher,
    tx: mpsc::UnboundedSender<Fetched>,
}

impl Shared {
    /// Starts a new fetch epoch for `partition`: messages fetched under older ones are dropped.
    fn new_epoch(&self, tp: Tp) -> u64 {
        let e = self.next_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        self.epochs.lock().expect("epochs lock").insert(tp, e);
        e
    }

    /// Nothing fetched for `tp` so far is delivered any more.
    fn retire(&self, tp: Tp) {
        self.epochs.lock().expect("epochs lock").remove(&tp);
    }

    fn is_current(&self, tp: Tp, epoch: u64) -> bool {
        self.epochs.lock().expect("epochs lock").get(&tp) == Some(&epoch)
    }

    fn topic_index(&self, topic: &str) -> Option<usize> {
        self.topics.iter().position(|t| t == topic)
    }
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
    /// Bytes of fetched records waiting for the application now (at most about
    /// `max_buffered_bytes` plus one fetch response).
    pub buffered_bytes: u64,
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
    rx: tokio::sync::Mutex<Receiving>,
    last: Mutex<Option<Message>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    close_tx: watch::Sender<bool>,
    seek_tx: watch::Sender<Option<i64>>,
}

/// The application's end of the queue: the batch being handed out, message by message.
struct Receiving {
    rx: mpsc::UnboundedReceiver<Fetched>,
    current: Option<fetch::Batch>,
}

impl Receiving {
    /// Gives the current batch's accounting back (used up or dropped).
    fn release(&mut self, shared: &Shared) {
        if let Some(b) = self.current.take() {
            shared.fetch.release(b.tp, b.count, b.bytes);
        }
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("topics", &self.shared.topics)
            .field("group_id", &self.shared.config.group_id)
            .finish()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // A reader dropped without `close` still leaves its group (in the background).
        self.close_tx.send_replace(true);
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
        // Unbounded in items, bounded by the fetch loops' accounting (max_buffered_bytes,
        // queue_capacity, max_partition_bytes): see `fetch`.
        let (tx, rx) = mpsc::unbounded_channel();
        let topics = if config.group_topics.is_empty() {
            vec![config.topic.clone()]
        } else {
            config.group_topics.clone()
        };
        let shared = Arc::new(Shared {
            topics,
            config,
            client,
            next_epoch: AtomicU64::new(0),
            epochs: Mutex::new(HashMap::new()),
            session: Mutex::new(Session::default()),
            processed: Mutex::new(BTreeMap::new()),
            positions: Mutex::new(BTreeMap::new()),
            high_watermarks: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
            fetch: fetch::Fetcher::default(),
            tx,
        });
        let (close_tx, close_rx) = watch::channel(false);
        let (seek_tx, seek_rx) = watch::channel(None);
        tokio::spawn(fetch::planner(shared.clone(), close_rx.clone()));
        let task = if shared.config.group_id.is_some() {
            tokio::spawn(group_loop(shared.clone(), close_rx))
        } else {
            tokio::spawn(partition_loop(shared.clone(), close_rx, seek_rx))
        };
        Ok(Self {
            shared,
            rx: tokio::sync::Mutex::new(Receiving { rx, current: None }),
            last: Mutex::new(None),
            task: Mutex::new(Some(task)),
            close_tx,
            seek_tx,
        })
    }

    /// The next message; blocks until there is one. In a group, the message returned by the
    /// previous call is committed (or marked for the next periodic commit) first; see the
    /// module docs.
    pub async fn read_message(&self) -> Result<Message> {
        let prev = self.last.lock().expect("last lock").take();
        if let Some(prev) = prev {
            self.mark(&prev);
            if self.shared.config.commit_interval.is_zero() {
                if let Err(e) = commit_processed(&self.shared).await {
                    tracing::warn!(target: "kafkit::reader", error = %e, "commit failed; the messages will be delivered again after the rebalance");
                }
            }
        }
        let m = self.fetch_message().await?;
        *self.last.lock().expect("last lock") = Some(m.clone());
        Ok(m)
    }

    /// The next message, without committing anything.
    pub async fn fetch_message(&self) -> Result<Message> {
        let mut r = self.rx.lock().await;
        loop {
            if let Some(b) = &mut r.current {
                if !self.shared.is_current(b.tp, b.epoch) {
                    r.release(&self.shared); // fetched before a revocation or a seek
                    continue;
                }
                let Some(m) = b.msgs.pop_front() else {
                    r.release(&self.shared);
                    continue;
                };
                let tp = b.tp;
                if b.msgs.is_empty() {
                    r.release(&self.shared);
                }
                let c = &self.shared.counters;
                c.messages.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(m.size() as u64, Ordering::Relaxed);
                self.shared
                    .positions
                    .lock()
                    .expect("positions lock")
                    .insert(tp, m.offset + 1);
                return Ok(m);
            }
            match r.rx.recv().await.ok_or(Error::Closed)? {
                Fetched::Batch(b) => r.current = Some(b),
                Fetched::Error { tp, epoch, error } => {
                    if self.shared.is_current(tp, epoch) {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// The messages as a `Stream` (each item as [`read_message`](Self::read_message) returns
    /// it, so commits follow the same rule); it ends when the reader is closed.
    pub fn stream(&self) -> impl futures_core::Stream<Item = Result<Message>> + '_ {
        futures_util::stream::unfold(self, |r| async move {
            match r.read_message().await {
                Err(Error::Closed) => None,
                other => Some((other, r)),
            }
        })
    }

    /// Marks a message processed without committing now: its offset + 1 is committed by the
    /// next periodic commit (`commit_interval`), before its partition is revoked in a
    /// rebalance, by [`commit_messages`](Self::commit_messages), or on [`close`](Self::close)
    /// (librdkafka's `offsets_store`, franz-go's `MarkCommitRecords`). Marks only move forward.
    pub fn mark(&self, m: &Message) {
        mark(&self.shared, m);
    }

    /// Partitions of the first topic (`topic`, or the first of `group_topics`) assigned to
    /// this reader, with the offsets their fetchers started at (empty while joining). See
    /// [`assignments`](Self::assignments) for all topics.
    pub fn assignment(&self) -> BTreeMap<i32, i64> {
        self.shared
            .session
            .lock()
            .expect("session lock")
            .assignment
            .iter()
            .filter(|((t, _), _)| *t == 0)
            .map(|((_, p), o)| (*p, *o))
            .collect()
    }

    /// Every assigned (topic, partition) with the offset its fetcher started at.
    pub fn assignments(&self) -> BTreeMap<(String, i32), i64> {
        self.shared
            .session
            .lock()
            .expect("session lock")
            .assignment
            .iter()
            .map(|((t, p), o)| ((self.shared.topics[*t].clone(), *p), *o))
            .collect()
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
        // A new epoch now, not in the background task: a read right after this call must not
        // return a message prefetched from the old position.
        self.shared.new_epoch((0, self.shared.config.partition));
        self.seek_tx.send_replace(Some(offset));
        Ok(())
    }

    /// Messages between the application's position and the high watermark, per assigned
    /// partition of the first topic (known once a fetch of that partition was answered).
    pub fn lag(&self) -> BTreeMap<i32, i64> {
        self.lags()
            .into_iter()
            .filter(|((t, _), _)| *t == self.shared.topics[0])
            .map(|((_, p), l)| (p, l))
            .collect()
    }

    /// [`lag`](Self::lag) for every assigned (topic, partition).
    pub fn lags(&self) -> BTreeMap<(String, i32), i64> {
        let assignment = self
            .shared
            .session
            .lock()
            .expect("session lock")
            .assignment
            .clone();
        let positions = self.shared.positions.lock().expect("positions lock");
        let hws = self.shared.high_watermarks.lock().expect("hw lock");
        assignment
            .iter()
            .filter_map(|(tp, start)| {
                let hw = *hws.get(tp)?;
                let pos = positions.get(tp).copied().unwrap_or(*start).max(*start);
                Some(((self.shared.topics[tp.0].clone(), tp.1), (hw - pos).max(0)))
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
            lag: self.lags().values().sum(),
            buffered_bytes: self.shared.fetch.buffered_bytes() as u64,
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
    /// group (unless it is a static member) and stops. Returns within a few seconds even during
    /// a rebalance.
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

/// Marks `m` processed (see [`Reader::mark`]).
fn mark(shared: &Shared, m: &Message) {
    let Some(t) = shared.topic_index(&m.topic) else {
        return; // not a message of this reader
    };
    let mut p = shared.processed.lock().expect("processed lock");
    let e = p.entry((t, m.partition)).or_insert(m.offset + 1);
    *e = (*e).max(m.offset + 1);
}

fn now_ms_to_time(ms: i64) -> Option<SystemTime> {
    (ms >= 0).then(|| UNIX_EPOCH + Duration::from_millis(ms as u64))
}

/// Commits `processed` with the current group session.
async fn commit_processed(shared: &Shared) -> Result<()> {
    let Some(group) = shared.config.group_id.clone() else {
        return Ok(());
    };
    let offsets: BTreeMap<Tp, i64> =
        std::mem::take(&mut *shared.processed.lock().expect("processed lock"));
    if offsets.is_empty() {
        return Ok(());
    }
    let (conn, generation, member_id) = {
        let s = shared.session.lock().expect("session lock");
        (s.conn.clone(), s.generation, s.member_id.clone())
    };
    let restore = |shared: &Shared, offsets: &BTreeMap<Tp, i64>| {
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
    let current = shared
        .session
        .lock()
        .expect("session lock")
        .commit_conn
        .clone();
    let conn = match current.filter(|c| c.is_alive() && c.addr() == conn.addr()) {
        Some(c) => c,
        None => match shared.client.dedicated(conn.addr()).await {
            Ok(c) => {
                let c = Arc::new(c);
                shared.session.lock().expect("session lock").commit_conn = Some(c.clone());
                c
            }
            Err(e) => {
                restore(shared, &offsets);
                return Err(e);
            }
        },
    };
    let mut by_topic: BTreeMap<usize, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in &offsets {
        by_topic.entry(*t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_metadata(Some(str_bytes(""))),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(&group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str_bytes(&member_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(&shared.topics[t]))
                        .with_partitions(parts)
                })
                .collect(),
        );
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
                    format!(
                        "commit {}/{} for group {group}",
                        t.name.as_str(),
                        p.partition_index
                    ),
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
        .map(|((t, p), o)| format!("topic: {} partition {p}: {o}", shared.topics[*t]))
        .collect();
    shared.counters.commits.fetch_add(1, Ordering::Relaxed);
    tracing::info!(target: "kafkit::reader", "committed offsets for group {group}: {}", list.join(", "));
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
    let offset = match crate::admin::list_one(&conn, topic, partition, ts).await {
        Ok(o) => o,
        Err(e) => {
            client.invalidate(topic);
            return Err(e);
        }
    };
    if offset < 0 && matches!(start, StartOffset::Timestamp(_)) {
        // Every message is older than the timestamp: start at the end.
        return Box::pin(list_offset(client, topic, partition, StartOffset::Last)).await;
    }
    Ok(offset)
}

/// Without a group: read one partition from `start_offset`, or from where `set_offset` says.
async fn partition_loop(
    shared: Arc<Shared>,
    mut close: watch::Receiver<bool>,
    mut seek: watch::Receiver<Option<i64>>,
) {
    let cfg = &shared.config;
    let p = cfg.partition;
    let tp: Tp = (0, p);
    let mut start = loop {
        if let Some(o) = *seek.borrow_and_update() {
            break o;
        }
        match list_offset(&shared.client, &cfg.topic, p, cfg.start_offset).await {
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
        // A fresh epoch per (re)start: whatever was queued before is dropped.
        let epoch = shared.new_epoch(tp);
        shared.session.lock().expect("session lock").assignment = BTreeMap::from([(tp, start)]);
        shared
            .positions
            .lock()
            .expect("positions lock")
            .insert(tp, start);
        tracing::info!(target: "kafkit::reader", "initializing kafka reader for partition {p} of {} starting at offset {start}", cfg.topic);
        shared.fetch.assign(tp, start, epoch);
        loop {
            tokio::select! {
                _ = close.changed() => {
                    shared.fetch.unassign(tp);
                    return;
                }
                r = seek.changed() => {
                    if r.is_err() {
                        return;
                    }
                    if let Some(o) = *seek.borrow_and_update() {
                        tracing::info!(target: "kafkit::reader", partition = p, offset = o, "seeking");
                        start = o;
                        break;
                    }
                }
            }
        }
    }
}

/// Group membership that outlives one generation.
struct Membership {
    member_id: String,
    generation: i32,
    /// The protocol the group chose at the last join.
    protocol: Option<GroupBalancer>,
    /// The partitions this member owns (and fetches).
    fetchers: BTreeSet<Tp>,
}

impl Membership {
    /// Stops fetching `partitions` and drops what was prefetched from them.
    fn revoke(&mut self, shared: &Shared, partitions: &[Tp]) {
        let mut session = shared.session.lock().expect("session lock");
        for p in partitions {
            shared.retire(*p);
            if self.fetchers.remove(p) {
                shared.fetch.unassign(*p);
            }
            session.assignment.remove(p);
        }
    }

    /// The coordinator no longer knows this member's generation (ILLEGAL_GENERATION, 22) or the
    /// member itself (UNKNOWN_MEMBER_ID, 25): its partitions are lost (the listener's
    /// `on_lost`).
    async fn lost(&mut self, shared: &Arc<Shared>, code: i16) {
        if code == 25 {
            self.member_id.clear();
        }
        let all: Vec<Tp> = self.fetchers.iter().copied().collect();
        if !all.is_empty() {
            tracing::info!(target: "kafkit::reader", "partitions lost: {}", describe(shared, &all));
        }
        self.revoke(shared, &all);
        let named = names(shared, &all);
        listener::notify(shared, named, |l, g, p| l.on_lost(g, p)).await;
    }

    /// Gives `partitions` up: delivery stops, then the listener's `on_revoked` runs (and may
    /// commit). The caller commits what was marked afterwards.
    async fn give_up(&mut self, shared: &Arc<Shared>, partitions: &[Tp]) {
        if partitions.is_empty() {
            return;
        }
        tracing::info!(target: "kafkit::reader", "revoking partitions {}", describe(shared, partitions));
        self.revoke(shared, partitions);
        let named = names(shared, partitions);
        listener::notify(shared, named, |l, g, p| l.on_revoked(g, p)).await;
    }

    async fn give_up_all(&mut self, shared: &Arc<Shared>) {
        let all: Vec<Tp> = self.fetchers.iter().copied().collect();
        self.give_up(shared, &all).await;
    }
}

enum Outcome {
    Rejoin,
    Closed,
}

/// `(topic, partition)` pairs for the listener.
fn names(shared: &Shared, tps: &[Tp]) -> Vec<(String, i32)> {
    tps.iter()
        .map(|(t, p)| (shared.topics[*t].clone(), *p))
        .collect()
}

/// "topic [partitions], ..." for logs.
fn describe<'a>(shared: &Shared, tps: impl IntoIterator<Item = &'a Tp>) -> String {
    let mut by: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        by.entry(&shared.topics[*t]).or_default().push(*p);
    }
    by.iter()
        .map(|(t, ps)| format!("{t} {ps:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn group_loop(shared: Arc<Shared>, mut close: watch::Receiver<bool>) {
    let group = shared.config.group_id.clone().expect("group");
    let mut m = Membership {
        member_id: String::new(),
        generation: -1,
        protocol: None,
        fetchers: BTreeSet::new(),
    };
    let mut backoff = Duration::from_millis(100);
    tracing::info!(target: "kafkit::reader", "entering loop for consumer group, {group}");
    loop {
        if *close.borrow() {
            break;
        }
        match generation(&shared, &group, &mut m, &mut close).await {
            Ok(Outcome::Closed) => break,
            Ok(Outcome::Rejoin) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "group membership failed; retrying");
                // Ownership is unknown now: stop delivering, commit what was processed.
                m.give_up_all(&shared).await;
                let _ = commit_processed(&shared).await;
                shared.session.lock().expect("session lock").conn = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = close.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    // Closing: stop delivering, commit what was processed, then leave so the group rebalances
    // at once (static members stay: their partitions wait for them for session_timeout).
    m.give_up_all(&shared).await;
    if let Err(e) = commit_processed(&shared).await {
        tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "final commit failed");
    }
    let conn = shared.session.lock().expect("session lock").conn.take();
    let is_static = shared.config.group_instance_id.is_some();
    if let (Some(conn), false, false) = (conn, m.member_id.is_empty(), is_static) {
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(&group)));
        match conn.version_for::<LeaveGroupRequest>() {
            Ok(v) if v >= 3 => {
                req.members =
                    vec![MemberIdentity::default().with_member_id(str_bytes(&m.member_id))]
            }
            _ => req.member_id = str_bytes(&m.member_id),
        }
        match tokio::time::timeout(Duration::from_secs(5), conn.send(&req)).await {
            Ok(Ok(_)) => {
                tracing::info!(target: "kafkit::reader", "left group {group} as member {}", m.member_id)
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

/// The coordinator connection of the session, or a new one.
async fn coordinator_conn(shared: &Shared, group: &str) -> Result<Arc<Connection>> {
    let current = shared.session.lock().expect("session lock").conn.clone();
    if let Some(c) = current.filter(|c| c.is_alive()) {
        return Ok(c);
    }
    let addr = shared.client.coordinator(group).await?;
    let c = Arc::new(shared.client.dedicated(&addr).await?);
    shared.session.lock().expect("session lock").conn = Some(c.clone());
    Ok(c)
}

/// The leader's assignment for the chosen protocol.
async fn leader_assign(
    shared: &Shared,
    group: &str,
    protocol: GroupBalancer,
    join: &JoinGroupResponse,
) -> Result<Vec<SyncGroupRequestAssignment>> {
    tracing::info!(target: "kafkit::reader", "selected as leader for group, {group}");
    let mut subs = Vec::new();
    let mut all_topics = Vec::new();
    for m in &join.members {
        let sub = assign::decode_subscription_full(m.metadata.clone()).unwrap_or_default();
        tracing::info!(target: "kafkit::reader", "found member: {} subscribed to {:?}", m.member_id, sub.topics);
        all_topics.extend(sub.topics.iter().cloned());
        subs.push((m.member_id.to_string(), sub));
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
    tracing::info!(target: "kafkit::reader", "using '{}' balancer to assign group, {group}", protocol.name());
    let plain: Vec<(String, Vec<String>)> = subs
        .iter()
        .map(|(m, s)| (m.clone(), s.topics.clone()))
        .collect();
    let result = match protocol {
        GroupBalancer::Range => assign::range_assign(&plain, &partitions),
        GroupBalancer::RoundRobin => assign::roundrobin_assign(&plain, &partitions),
        GroupBalancer::CooperativeSticky => assign::cooperative_sticky_assign(&subs, &partitions),
    };
    Ok(result
        .into_iter()
        .map(|(m, a)| {
            tracing::info!(target: "kafkit::reader", "assigned member/topic/partitions {m}/{a:?}");
            SyncGroupRequestAssignment::default()
                .with_member_id(str_bytes(&m))
                .with_assignment(assign::encode_assignment(&a))
        })
        .collect())
}

/// Where each partition starts: the group's committed offset, else `start_offset`.
async fn start_offsets(
    shared: &Shared,
    conn: &Connection,
    group: &str,
    partitions: &[Tp],
) -> Result<BTreeMap<Tp, i64>> {
    let cfg = &shared.config;
    let mut starts = BTreeMap::new();
    if partitions.is_empty() {
        return Ok(starts);
    }
    let mut by_topic: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(*t).or_default().push(*p);
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_topics(Some(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(&shared.topics[*t]))
                        .with_partition_indexes(ps.clone())
                })
                .collect(),
        ));
    let (_, resp) = conn.send(&req).await?;
    if resp.error_code != 0 {
        return Err(Error::kafka(
            resp.error_code,
            format!("OffsetFetch {group}"),
        ));
    }
    for t in &resp.topics {
        let Some(ti) = shared.topic_index(t.name.as_str()) else {
            continue;
        };
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(Error::kafka(
                    p.error_code,
                    format!(
                        "OffsetFetch {group} {}/{}",
                        t.name.as_str(),
                        p.partition_index
                    ),
                ));
            }
            let tp = (ti, p.partition_index);
            if p.committed_offset >= 0 && partitions.contains(&tp) {
                starts.insert(tp, p.committed_offset);
            }
        }
    }
    for &tp in partitions {
        if let std::collections::btree_map::Entry::Vacant(e) = starts.entry(tp) {
            e.insert(
                list_offset(&shared.client, &shared.topics[tp.0], tp.1, cfg.start_offset).await?,
            );
        }
    }
    Ok(starts)
}

/// One generation: join, sync, apply the assignment, heartbeat until a rebalance or close.
async fn generation(
    shared: &Arc<Shared>,
    group: &str,
    m: &mut Membership,
    close: &mut watch::Receiver<bool>,
) -> Result<Outcome> {
    let cfg = &shared.config;
    let Some(conn) = unless_closed(close, coordinator_conn(shared, group)).await else {
        return Ok(Outcome::Closed);
    };
    let conn = conn?;
    let topics = shared.topics.clone();
    let mut owned: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in &m.fetchers {
        owned.entry(topics[*t].clone()).or_default().push(*p);
    }
    let protocols: Vec<JoinGroupRequestProtocol> = cfg
        .group_balancers
        .iter()
        .map(|b| {
            let metadata = match b {
                GroupBalancer::CooperativeSticky => {
                    assign::encode_subscription_v1(&topics, &owned, m.generation)
                }
                _ => assign::encode_subscription(&topics),
            };
            JoinGroupRequestProtocol::default()
                .with_name(str_bytes(b.name()))
                .with_metadata(metadata)
        })
        .collect();
    let instance = cfg.group_instance_id.as_deref().map(str_bytes);

    // JoinGroup (again with the id the broker gives, if it answers MEMBER_ID_REQUIRED).
    let join = loop {
        let mut req = JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_session_timeout_ms(cfg.session_timeout.as_millis() as i32)
            .with_member_id(str_bytes(&m.member_id))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(protocols.clone());
        let v = conn.version_for::<JoinGroupRequest>()?;
        if v >= 1 {
            req.rebalance_timeout_ms = cfg.rebalance_timeout.as_millis() as i32;
        }
        if v >= 5 {
            req.group_instance_id = instance.clone();
        }
        let wait = cfg.rebalance_timeout + cfg.session_timeout;
        let Some(r) = unless_closed(close, conn.send_timeout(&req, wait)).await else {
            return Ok(Outcome::Closed);
        };
        let (_, resp) = r?;
        match resp.error_code {
            0 => break resp,
            79 => m.member_id = resp.member_id.to_string(),
            25 => {
                m.member_id.clear();
                return Err(Error::kafka(25, format!("JoinGroup {group}")));
            }
            code => return Err(Error::kafka(code, format!("JoinGroup {group}"))),
        }
    };
    m.member_id = join.member_id.to_string();
    m.generation = join.generation_id;
    let chosen = join
        .protocol_name
        .as_ref()
        .and_then(|p| GroupBalancer::from_name(p.as_str()))
        .or_else(|| (cfg.group_balancers.len() == 1).then(|| cfg.group_balancers[0]))
        .ok_or_else(|| {
            Error::kafka(
                23,
                format!(
                    "JoinGroup {group}: the group chose {:?}",
                    join.protocol_name
                ),
            )
        })?;
    m.protocol = Some(chosen);
    let cooperative = chosen == GroupBalancer::CooperativeSticky;
    if !cooperative && !m.fetchers.is_empty() {
        // Eager protocol: nothing may be kept into the new generation.
        m.give_up_all(shared).await;
    }
    let generation_id = join.generation_id;
    tracing::info!(target: "kafkit::reader", "joined group {group} as member {} in generation {generation_id}", m.member_id);

    // A static member rejoining a stable group is answered without the member list: the
    // assignment stays as it is (KIP-345), nothing to compute.
    let assignments = if join.leader == join.member_id && !join.members.is_empty() {
        leader_assign(shared, group, chosen, &join).await?
    } else {
        Vec::new()
    };
    let mut req = SyncGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id(generation_id)
        .with_member_id(str_bytes(&m.member_id))
        .with_assignments(assignments);
    if conn.version_for::<SyncGroupRequest>()? >= 3 {
        req.group_instance_id = instance.clone();
    }
    let Some(r) = unless_closed(
        close,
        conn.send_timeout(&req, cfg.rebalance_timeout + cfg.session_timeout),
    )
    .await
    else {
        return Ok(Outcome::Closed);
    };
    let sync = match r {
        Ok((_, sync)) => sync,
        // A SyncGroup answer that does not decode: librdkafka's mock cluster answers errors
        // (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION) with a null assignment, which v3+ does
        // not allow. Rejoin at once with the same member id, as for REBALANCE_IN_PROGRESS;
        // backing off and reconnecting made a mixed group miss every rebalance window.
        Err(Error::Protocol(e)) => {
            tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "undecodable SyncGroup answer; rejoining");
            return Ok(Outcome::Rejoin);
        }
        Err(e) => return Err(e),
    };
    match sync.error_code {
        0 => {}
        27 => return Ok(Outcome::Rejoin),
        code @ (22 | 25) => {
            m.lost(shared, code).await;
            return Ok(Outcome::Rejoin);
        }
        code => return Err(Error::kafka(code, format!("SyncGroup {group}"))),
    }
    let assigned = assign::decode_assignment(sync.assignment.clone())
        .ok_or_else(|| Error::kafka(-1, format!("undecodable assignment for group {group}")))?;
    let mine: BTreeSet<Tp> = assigned
        .iter()
        .filter_map(|(t, ps)| shared.topic_index(t).map(|ti| (ti, ps)))
        .flat_map(|(ti, ps)| ps.iter().map(move |p| (ti, *p)))
        .collect();
    tracing::info!(target: "kafkit::reader", "sync group finished for group, {group}: assigned {}", describe(shared, &mine));
    {
        let mut s = shared.session.lock().expect("session lock");
        s.generation = generation_id;
        s.member_id = m.member_id.clone();
    }

    // Apply: revoke what was taken away, start what is new, keep the rest running.
    let revoked: Vec<Tp> = m
        .fetchers
        .iter()
        .filter(|p| !mine.contains(p))
        .copied()
        .collect();
    let added: Vec<Tp> = mine
        .iter()
        .filter(|p| !m.fetchers.contains(p))
        .copied()
        .collect();
    if !revoked.is_empty() {
        m.give_up(shared, &revoked).await;
        if let Err(e) = commit_processed(shared).await {
            tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "commit of revoked partitions failed");
        }
    }
    let starts = start_offsets(shared, &conn, group, &added).await?;
    if !starts.is_empty() {
        let list: Vec<String> = starts
            .iter()
            .map(|((t, p), o)| format!("{}/{p}: {o}", shared.topics[*t]))
            .collect();
        tracing::info!(target: "kafkit::reader", "subscribed to partitions: {}", list.join(", "));
    }
    {
        let mut session = shared.session.lock().expect("session lock");
        let mut positions = shared.positions.lock().expect("positions lock");
        for (&p, &o) in &starts {
            session.assignment.insert(p, o);
            positions.insert(p, o);
        }
    }
    listener::notify(shared, names(shared, &added), |l, g, p| l.on_assigned(g, p)).await;
    for (&p, &o) in &starts {
        let epoch = shared.new_epoch(p);
        shared.fetch.assign(p, o, epoch);
        m.fetchers.insert(p);
    }
    shared.counters.rebalances.fetch_add(1, Ordering::Relaxed);
    if cooperative && !revoked.is_empty() {
        // KIP-429: rejoin so the revoked partitions can go to their new owner.
        return Ok(Outcome::Rejoin);
    }
    let mut partition_counts = Vec::with_capacity(shared.topics.len());
    for t in &shared.topics {
        partition_counts.push(shared.client.topic(t).await.map_or(0, |m| m.leaders.len()));
    }

    // Heartbeat (and commit, and watch the partition count) until something changes.
    tracing::info!(target: "kafkit::reader", "started heartbeat for group, {group} [{:?}]", cfg.heartbeat_interval);
    let mut beat = tokio::time::interval(cfg.heartbeat_interval);
    beat.tick().await;
    let commit_every = if cfg.commit_interval.is_zero() {
        Duration::from_secs(3600)
    } else {
        cfg.commit_interval
    };
    let mut commit_tick = tokio::time::interval(commit_every);
    commit_tick.tick().await;
    let mut watch_tick =
        tokio::time::interval(cfg.partition_watch_interval.max(Duration::from_millis(1)));
    watch_tick.tick().await;
    let rebalance = loop {
        tokio::select! {
            _ = beat.tick() => {}
            _ = commit_tick.tick(), if !cfg.commit_interval.is_zero() => {
                if let Err(e) = commit_processed(shared).await {
                    tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "periodic commit failed");
                }
                continue;
            }
            _ = watch_tick.tick(), if cfg.watch_partition_changes => {
                let _ = shared.client.refresh(&shared.topics).await;
                let mut grown = false;
                for (t, before) in shared.topics.iter().zip(&partition_counts) {
                    if let Ok(meta) = shared.client.topic(t).await {
                        if meta.leaders.len() != *before {
                            tracing::info!(target: "kafkit::reader", "{t} now has {} partitions (was {before}); rejoining", meta.leaders.len());
                            grown = true;
                        }
                    }
                }
                if grown {
                    break true;
                }
                continue;
            }
            _ = close.changed() => return Ok(Outcome::Closed),
        }
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(&m.member_id))
            .with_group_instance_id(if conn.version_for::<HeartbeatRequest>()? >= 3 {
                instance.clone()
            } else {
                None
            });
        let (_, r) = conn.send(&req).await?;
        match r.error_code {
            0 => {}
            27 => {
                tracing::info!(target: "kafkit::reader", "group {group} is rebalancing; rejoining");
                break true;
            }
            code @ (22 | 25) => {
                m.lost(shared, code).await;
                return Ok(Outcome::Rejoin);
            }
            code => return Err(Error::kafka(code, format!("Heartbeat {group}"))),
        }
    };
    debug_assert!(rebalance);
    if !cooperative {
        // Eager: revoke everything before rejoining; the commit below still counts for this
        // generation (brokers accept commits while the group prepares the rebalance).
        m.give_up_all(shared).await;
    }
    if let Err(e) = commit_processed(shared).await {
        tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "commit before rejoining failed");
    }
    Ok(Outcome::Rejoin)
}
