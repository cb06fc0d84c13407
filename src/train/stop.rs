//! A request to stop training between two steps (what a signal handler sets): the loop checks it
//! before each step, saves, and returns [`Error::Interrupted`](crate::Error::Interrupted).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Shared between the loop and whoever asks it to stop; holds the number of the signal that asked (0:
/// keep going).
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicUsize>);

impl Stop {
    /// The flag itself, for a signal handler to store the signal's number into.
    pub fn flag(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.0)
    }

    /// The signal that asked to stop, if any.
    pub fn requested(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal as i32),
        }
    }
}
