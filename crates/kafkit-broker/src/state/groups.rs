//! The group coordinator's shared part: the state machine and the requests waiting on it.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::group::{Action, Coordinator, JoinResult, SyncResult, Token};

/// A JoinGroup or SyncGroup waiting for the coordinator.
#[derive(Debug)]
pub enum Waiter {
    /// JoinGroup.
    Join(oneshot::Sender<JoinResult>),
    /// SyncGroup.
    Sync(oneshot::Sender<SyncResult>),
}

/// The coordinator state machine plus its waiters (committed offsets are apart, in
/// [`super::ClusterState::offsets`]: no disk work under this lock).
#[derive(Debug)]
pub struct Groups {
    /// The state machine.
    pub coordinator: Coordinator,
    /// Requests waiting for an [`Action`].
    pub waiters: HashMap<Token, Waiter>,
}

impl Groups {
    /// Delivers actions to their waiters.
    pub fn dispatch(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Join(t, r) => {
                    if let Some(Waiter::Join(tx)) = self.waiters.remove(&t) {
                        let _ = tx.send(r);
                    }
                }
                Action::Sync(t, r) => {
                    if let Some(Waiter::Sync(tx)) = self.waiters.remove(&t) {
                        let _ = tx.send(r);
                    }
                }
            }
        }
    }
}
