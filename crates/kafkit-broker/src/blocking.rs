//! Running disk work off the runtime's worker threads (the crate's concurrency rule).

/// Runs `f` on tokio's blocking pool and waits for it. A panic in `f` is raised again in the
/// caller (as if `f` had run inline); `None` only when the runtime is shutting down.
pub(crate) async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Some(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}
