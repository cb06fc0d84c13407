//! Ctrl-C (SIGINT) and SIGTERM while training: the first asks the loop to stop after its current step
//! and save; a second exits at once with `128 + signal`, leaving the last checkpoint as it was (saves
//! are atomic). The handlers live as long as the guard, so Ctrl-C works as usual after training.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::SigId;

use crate::error::{Error, Result};
use crate::train::Stop;

pub struct StopOnSignals {
    stop: Stop,
    ids: Vec<SigId>,
}

impl StopOnSignals {
    pub fn install() -> Result<Self> {
        let stop = Stop::default();
        let armed = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        let failed =
            |e: std::io::Error| Error::Invalid(format!("installing a signal handler: {e}"));
        for signal in [SIGINT, SIGTERM] {
            // In this order: the exit checks the flag the first signal is about to set.
            let exit =
                flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&armed));
            ids.push(exit.map_err(failed)?);
            ids.push(flag::register(signal, Arc::clone(&armed)).map_err(failed)?);
            let asked = flag::register_usize(signal, stop.flag(), signal as usize);
            ids.push(asked.map_err(failed)?);
        }
        Ok(StopOnSignals { stop, ids })
    }

    pub fn stop(&self) -> &Stop {
        &self.stop
    }
}

impl Drop for StopOnSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
