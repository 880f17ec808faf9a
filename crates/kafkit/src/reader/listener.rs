//! Rebalance listener: the application hears about assignments and revocations and can commit
//! before its partitions go to another member (Java's `ConsumerRebalanceListener`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{commit_processed, Shared};
use crate::error::Result;
use crate::message::Message;

/// A boxed future returned by the listener's methods.
pub type ListenerFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Told about changes to a group member's partitions; each call is awaited before the reader
/// goes on.
///
/// * [`on_revoked`](Self::on_revoked): the partitions are being taken away in a rebalance.
///   Nothing more of them is delivered from here on; the group still counts this member as
///   their owner, so commits made now (through the [`Rebalance`] handle) are accepted. After
///   it returns, the reader commits what was marked and gives the partitions up.
/// * [`on_assigned`](Self::on_assigned): the partitions are this member's now, before
///   fetching them starts (from the group's committed offset, or `start_offset`).
/// * [`on_lost`](Self::on_lost): the member was dropped from the group (its session expired
///   or its generation is gone), so the partitions already belong to someone else and
///   commits would be refused: discard uncommitted work instead.
///
/// Partitions are `(topic, partition)`. A call that takes long holds the rebalance up (up to
/// the group's rebalance timeout).
pub trait RebalanceListener: Send + Sync {
    /// Partitions assigned to this member.
    fn on_assigned<'a>(
        &'a self,
        _group: &'a Rebalance,
        _partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        Box::pin(async {})
    }

    /// Partitions about to be taken away (commit what was processed now).
    fn on_revoked<'a>(
        &'a self,
        _group: &'a Rebalance,
        _partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        Box::pin(async {})
    }

    /// Partitions lost without a chance to commit.
    fn on_lost<'a>(
        &'a self,
        _group: &'a Rebalance,
        _partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        Box::pin(async {})
    }
}

/// What a listener may do with the reader during a rebalance: commit.
pub struct Rebalance {
    pub(super) shared: Arc<Shared>,
}

impl Rebalance {
    /// Commits these messages (offset + 1 per partition's latest), as
    /// [`Reader::commit_messages`](super::Reader::commit_messages) does.
    pub async fn commit_messages(&self, messages: &[Message]) -> Result<()> {
        for m in messages {
            self.mark(m);
        }
        commit_processed(&self.shared).await
    }

    /// Marks a message processed, as [`Reader::mark`](super::Reader::mark) does; the reader
    /// commits marks right after `on_revoked` returns.
    pub fn mark(&self, m: &Message) {
        super::mark(&self.shared, m);
    }

    /// The consumer group.
    pub fn group_id(&self) -> &str {
        self.shared.config.group_id.as_deref().unwrap_or_default()
    }
}

/// A listener in a [`ReaderConfig`](crate::ReaderConfig) (`Debug` and `Clone` for the
/// config's sake).
#[derive(Clone)]
pub struct Listener(pub Arc<dyn RebalanceListener>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RebalanceListener")
    }
}

impl<L: RebalanceListener + 'static> From<L> for Listener {
    fn from(l: L) -> Self {
        Listener(Arc::new(l))
    }
}

/// Calls `f` on the configured listener (if any) for `partitions`.
pub(super) async fn notify<'a>(
    shared: &'a Arc<Shared>,
    partitions: Vec<(String, i32)>,
    f: impl for<'b> FnOnce(
        &'b dyn RebalanceListener,
        &'b Rebalance,
        &'b [(String, i32)],
    ) -> ListenerFuture<'b>,
) {
    let Some(Listener(l)) = shared.config.rebalance_listener.clone() else {
        return;
    };
    if partitions.is_empty() {
        return;
    }
    let handle = Rebalance {
        shared: shared.clone(),
    };
    f(l.as_ref(), &handle, &partitions).await;
}
