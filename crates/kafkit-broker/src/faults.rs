//! Injected faults waiting to be applied (error codes, dropped responses, delays): the table
//! `control::Control` fills and the request path (`handler`, `server`) consults. Apart from
//! `control` so the cluster state holds it without depending on `control` (which depends on
//! the state): no import circle.

use std::collections::VecDeque;
use std::time::Duration;

/// An error code to answer instead of serving a request.
#[derive(Debug, Clone)]
pub struct InjectedError {
    /// API key it applies to.
    pub api_key: i16,
    /// Only on this broker, or any.
    pub broker: Option<i32>,
    /// Error code to answer with.
    pub code: i16,
}

/// Pending injected faults.
#[derive(Debug, Default)]
pub struct Faults {
    pub(crate) errors: VecDeque<InjectedError>,
    pub(crate) drops: VecDeque<(i16, Option<i32>)>,
    pub(crate) delays: Vec<(Option<i16>, Option<i32>, Duration)>,
}

impl Faults {
    /// Takes the first injected error matching this request, if any.
    pub fn take_error(&mut self, api_key: i16, broker: i32) -> Option<i16> {
        let i = self
            .errors
            .iter()
            .position(|e| e.api_key == api_key && e.broker.is_none_or(|b| b == broker))?;
        self.errors.remove(i).map(|e| e.code)
    }

    /// Whether to serve this request but lose its response (closing the connection).
    pub fn take_drop(&mut self, api_key: i16, broker: i32) -> bool {
        match self
            .drops
            .iter()
            .position(|(k, b)| *k == api_key && b.is_none_or(|b| b == broker))
        {
            Some(i) => {
                self.drops.remove(i);
                true
            }
            None => false,
        }
    }

    /// Total delay configured for this request.
    pub fn delay_for(&self, api_key: i16, broker: i32) -> Duration {
        self.delays
            .iter()
            .filter(|(k, b, _)| k.is_none_or(|k| k == api_key) && b.is_none_or(|b| b == broker))
            .map(|(_, _, d)| *d)
            .sum()
    }
}
