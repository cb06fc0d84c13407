//! What a step records before its one submit, behind a narrow API so the layers above `gpu` never touch
//! wgpu; and reading results back through staging buffers.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::gpu::export::Captured;
use crate::gpu::{Dispatch, Gpu, Tensor, Timeline};

/// One command encoder: clears, a compute pass of dispatches, copies; submitted once by
/// [`Gpu::submit`].
pub struct Commands {
    pub(crate) encoder: wgpu::CommandEncoder,
    /// The dispatches recorded, when cases are exported (see `export.rs`).
    pub(crate) captured: Vec<Arc<Captured>>,
    /// Whether a buffer was cleared (before the dispatches, in any exported case).
    pub(crate) cleared: bool,
}

impl Commands {
    /// Zeroes `t` (a gradient arena at the start of a step).
    pub fn clear(&mut self, t: &Tensor) {
        self.cleared = true;
        self.encoder
            .clear_buffer(&t.buffer, t.offset, Some(t.bytes()));
    }

    /// Records `dispatches` into one compute pass.
    pub fn dispatch(&mut self, dispatches: &[Dispatch]) {
        self.capture(dispatches);
        Dispatch::record_all(&mut self.encoder, dispatches);
    }

    /// Records the `lists` of dispatches, one after the other, into one compute pass whose begin and
    /// end `timeline` keeps (or a plain pass without one).
    pub fn dispatch_timed(&mut self, lists: &[&[Dispatch]], timeline: Option<&Timeline>) {
        lists.iter().for_each(|l| self.capture(l));
        match timeline {
            Some(timeline) => timeline.record(&mut self.encoder, lists),
            None => {
                let mut pass = (self.encoder).begin_compute_pass(&Default::default());
                lists
                    .iter()
                    .flat_map(|l| l.iter())
                    .for_each(|d| d.record(&mut pass));
            }
        }
    }

    fn capture(&mut self, dispatches: &[Dispatch]) {
        let captured = dispatches.iter().filter_map(|d| d.captured.clone());
        self.captured.extend(captured);
    }
}

impl Gpu {
    /// A fresh command encoder.
    pub fn commands(&self, label: &str) -> Commands {
        let encoder = (self.device)
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        Commands {
            encoder,
            captured: Vec::new(),
            cleared: false,
        }
    }
}

/// A submitted command buffer, to wait for.
#[derive(Clone, Debug)]
pub struct Submission(pub(crate) wgpu::SubmissionIndex);

/// What a requested mapping waits on: the submission that fills the staging buffer, and the mapping's
/// result.
type PendingMap = (
    Option<Submission>,
    Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
);

/// A staging buffer the GPU copies a tensor (or part of one) into and the CPU maps to read: made once,
/// reused by every read. A read is requested after the submit that fills it and finished later, so the
/// CPU can queue more work first ([`Readback::request`], [`Readback::finish`]).
pub struct Readback {
    staging: wgpu::Buffer,
    bytes: u64,
    pending: Mutex<Option<PendingMap>>,
}

impl Readback {
    /// A staging buffer of `bytes`.
    pub fn new(gpu: &Gpu, label: &str, bytes: u64) -> Self {
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        Readback {
            staging: gpu.buffer(label, bytes, usage),
            bytes,
            pending: Mutex::new(None),
        }
    }

    /// Records the copy of all of `source` into the staging buffer.
    pub fn copy(&self, commands: &mut Commands, source: &Tensor) {
        self.copy_bytes(&mut commands.encoder, &source.buffer, source.offset);
    }

    /// Records the copy of the first `len` elements of `source` to element `at` of the staging buffer.
    pub fn copy_range(&self, commands: &mut Commands, source: &Tensor, len: usize, at: usize) {
        let bytes = (4 * len as u64).min(source.bytes());
        (commands.encoder).copy_buffer_to_buffer(
            &source.buffer,
            source.offset,
            &self.staging,
            4 * at as u64,
            bytes,
        );
    }

    /// Records the copy of this readback's bytes from `buffer` at byte `offset`.
    pub(crate) fn copy_bytes(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        offset: u64,
    ) {
        encoder.copy_buffer_to_buffer(buffer, offset, &self.staging, 0, self.bytes);
    }

    /// Whether a read was requested and not yet finished.
    pub fn is_pending(&self) -> bool {
        self.pending.lock().is_ok_and(|p| p.is_some())
    }

    /// Asks for the staging buffer's contents once `after` (the submit that fills it; `None`: all
    /// submitted work) has run, without waiting.
    pub fn request(&self, after: Option<Submission>) {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.staging
            .map_async(wgpu::MapMode::Read, .., move |result| {
                let _ = sender.send(result);
            });
        if let Ok(mut pending) = self.pending.lock() {
            *pending = Some((after, receiver));
        }
    }

    /// Waits for the requested read (only for the submission it follows, not for work queued after
    /// it) and returns the contents (`what` names the read in errors).
    pub fn finish<T: Pod>(&self, gpu: &Gpu, what: &str) -> Result<Vec<T>> {
        let mut values = Vec::new();
        self.finish_into(gpu, what, &mut values)?;
        Ok(values)
    }

    /// [`Readback::finish`] into `values` (resized to the contents), so that a read made every step
    /// reuses one allocation.
    pub fn finish_into<T: Pod>(&self, gpu: &Gpu, what: &str, values: &mut Vec<T>) -> Result<()> {
        let pending = self.pending.lock().ok().and_then(|mut p| p.take());
        let Some((after, receiver)) = pending else {
            return Err(Error::gpu(what, "no read was requested"));
        };
        match after {
            Some(submission) => gpu.wait_for(&submission)?,
            None => gpu.wait()?,
        }
        receiver
            .recv()
            .map_err(|e| Error::gpu(what, e))?
            .map_err(|e| Error::gpu(what, e))?;
        {
            let view = (self.staging)
                .get_mapped_range(..)
                .map_err(|e| Error::gpu(what, e))?;
            values.resize(view.len() / size_of::<T>(), T::zeroed());
            bytemuck::cast_slice_mut(values.as_mut_slice()).copy_from_slice(&view);
        }
        self.staging.unmap();
        Ok(())
    }

    /// Waits for all submitted work and returns the contents.
    pub fn read<T: Pod>(&self, gpu: &Gpu, what: &str) -> Result<Vec<T>> {
        self.request(None);
        self.finish(gpu, what)
    }
}
