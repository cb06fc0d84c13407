//! Compiling pipelines: each distinct (shader, entry point, constants, binding writability) once per
//! context, and, while a plan is built, on a few worker threads.
//!
//! Creating pipelines is most of the time a plan takes to build (the driver compiles each one), wgpu's
//! `Device` is `Send + Sync` and drivers compile concurrently. So inside [`Gpu::build_parallel`] a
//! request for a pipeline not yet made queues it for the workers and returns at once with a
//! [`Pipeline`] still compiling: lowering the ops, which only creates small buffers and bind groups,
//! goes on while the workers compile the distinct pipelines it found. A pipeline wanted again waits in
//! the queue once; nobody blocks on it until something records or checks it. Outside, a request
//! compiles at once, as a kernel test expects. Where the driver compiles at a pipeline's first dispatch
//! (lavapipe), the worker then warms the pipeline up (`warm_up.rs`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, Shader};

/// A compiled pipeline, or one a worker is still compiling. A failure is kept as its message.
pub(crate) type Pipeline = Arc<OnceLock<std::result::Result<wgpu::ComputePipeline, String>>>;

type Module = Arc<OnceLock<std::result::Result<wgpu::ShaderModule, String>>>;

type CacheKey = (
    &'static str,
    &'static str,
    Vec<(&'static str, u64)>,
    Vec<bool>,
);

/// Shader modules by name and pipelines (with their bind group layout) by [`CacheKey`]. The lock guards
/// the maps only; compiling happens outside it.
#[derive(Default)]
pub(crate) struct PipelineCache {
    maps: Mutex<Maps>,
    /// Held through a request for a pipeline on backends that compile one at a time (see
    /// [`Gpu::compiles_concurrently`]), so that threads queue here rather than at the backend.
    one_at_a_time: Mutex<()>,
}

#[derive(Default)]
struct Maps {
    modules: HashMap<&'static str, Module>,
    pipelines: HashMap<CacheKey, (Pipeline, wgpu::BindGroupLayout)>,
}

/// One pipeline to compile.
struct Job {
    kernel: Kernel,
    layout: wgpu::BindGroupLayout,
    /// Storage bindings before the uniform.
    storage: usize,
    module: Module,
    pipeline: Pipeline,
}

/// At most this many compile workers: a plan has a few dozen distinct pipelines.
const MAX_WORKERS: usize = 8;

thread_local! {
    /// While this thread runs [`Gpu::build_parallel`]: that context's address and its workers' queue.
    static QUEUE: RefCell<Option<(usize, Sender<Job>)>> = const { RefCell::new(None) };
}

/// Puts this thread's queue back as it was when dropped, also when the build panics (the workers stop
/// once the queue's last sender is gone).
struct Restore(Option<(usize, Sender<Job>)>);

impl Drop for Restore {
    fn drop(&mut self) {
        QUEUE.with(|q| *q.borrow_mut() = self.0.take());
    }
}

impl Gpu {
    /// Runs `build` (which makes dispatches) while worker threads, one per core up to
    /// [`MAX_WORKERS`], compile the pipelines it asks for; returns when they are all compiled. Check
    /// each dispatch with [`crate::gpu::Dispatch::ready`] for compile errors. With one core (or where
    /// threads are not known, as on the web) `build` compiles as it goes.
    pub fn build_parallel<R>(&self, build: impl FnOnce() -> R) -> R {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        if workers < 2 || !self.compiles_concurrently() {
            return build();
        }
        let (sender, receiver) = channel();
        let receiver = Mutex::new(receiver);
        std::thread::scope(|s| {
            for _ in 0..workers.min(MAX_WORKERS) {
                s.spawn(|| self.compile_queued(&receiver));
            }
            let previous = QUEUE.with(|q| q.replace(Some((self.address(), sender))));
            let _restore = Restore(previous);
            build()
        })
    }

    /// A worker: compiles jobs until the queue closes.
    fn compile_queued(&self, jobs: &Mutex<Receiver<Job>>) {
        loop {
            let job = match jobs.lock() {
                Ok(receiver) => receiver.recv(),
                Err(_) => return,
            };
            let Ok(job) = job else { return };
            self.compile(&job);
            if let (true, Some(Ok(pipeline))) =
                (self.compiles_at_first_dispatch(), job.pipeline.get())
            {
                self.warm_up(pipeline, &job.layout, job.storage);
            }
        }
    }

    /// False for GL, whose one context compiles one pipeline at a time: compiling from several threads
    /// gains nothing there, and threads waiting for the context give up after a few seconds.
    fn compiles_concurrently(&self) -> bool {
        self.info().backend != wgpu::Backend::Gl
    }

    fn address(&self) -> usize {
        self as *const Gpu as usize
    }

    /// The pipeline for `kernel` with storage bindings of the given writability followed by one uniform,
    /// and its bind group layout. Made on first use and cached; inside [`Gpu::build_parallel`] it may
    /// still be compiling when this returns, elsewhere it is compiled (a compile error is returned).
    pub(crate) fn pipeline(
        &self,
        kernel: &Kernel,
        writable: &[bool],
    ) -> Result<(Pipeline, wgpu::BindGroupLayout)> {
        let key: CacheKey = (
            kernel.shader.name,
            kernel.entry,
            kernel
                .constants
                .iter()
                .map(|&(k, v)| (k, v.to_bits()))
                .collect(),
            writable.to_vec(),
        );
        // On GL, one request at a time, as threads waiting for its context give up after a while.
        let _one_at_a_time = match self.compiles_concurrently() {
            true => None,
            // A poisoned lock guards nothing: go on.
            false => Some(
                self.pipelines
                    .one_at_a_time
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            ),
        };
        let (found, job) = self.lookup(key, kernel)?;
        let Some(job) = job else {
            return self.compiled(kernel, found);
        };
        // The job back when no worker of this context takes it.
        let unqueued = QUEUE.with(|q| match &*q.borrow() {
            Some((gpu, sender)) if *gpu == self.address() => sender.send(job).err().map(|e| e.0),
            _ => Some(job),
        });
        match unqueued {
            None => Ok(found),
            Some(job) => {
                self.compile(&job);
                self.compiled(kernel, found)
            }
        }
    }

    /// The cache entry for `key`, and the job that compiles it when it is new.
    #[allow(clippy::type_complexity)]
    fn lookup(
        &self,
        key: CacheKey,
        kernel: &Kernel,
    ) -> Result<((Pipeline, wgpu::BindGroupLayout), Option<Job>)> {
        let mut cache = self
            .pipelines
            .maps
            .lock()
            .map_err(|_| Error::gpu("pipeline cache", "poisoned by an earlier panic"))?;
        if let Some(found) = cache.pipelines.get(&key) {
            return Ok((found.clone(), None));
        }
        let found = (Pipeline::default(), self.storage_layout(&key.3));
        let job = Job {
            kernel: kernel.clone(),
            layout: found.1.clone(),
            storage: key.3.len(),
            module: cache.modules.entry(kernel.shader.name).or_default().clone(),
            pipeline: found.0.clone(),
        };
        cache.pipelines.insert(key, found.clone());
        Ok((found, Some(job)))
    }

    /// Waits for `found`'s pipeline (another thread may be compiling it) and reports its error.
    fn compiled(
        &self,
        kernel: &Kernel,
        found: (Pipeline, wgpu::BindGroupLayout),
    ) -> Result<(Pipeline, wgpu::BindGroupLayout)> {
        match found.0.wait() {
            Ok(_) => Ok(found),
            Err(e) => Err(Error::gpu(
                format!("compiling {}/{}", kernel.shader.name, kernel.entry),
                e,
            )),
        }
    }

    fn compile(&self, job: &Job) {
        job.pipeline.get_or_init(|| {
            let module = job
                .module
                .get_or_init(|| self.compile_module(job.kernel.shader));
            self.compile_pipeline(&job.kernel, module.as_ref()?, &job.layout)
        });
    }

    /// Parses and validates `shader`; a WGSL error comes back as its message.
    fn compile_module(&self, shader: Shader) -> std::result::Result<wgpu::ShaderModule, String> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(match self.info().backend {
                    wgpu::Backend::BrowserWebGpu => shader.web_source(),
                    _ => shader.source.into(),
                }),
            });
        match pollster::block_on(scope.pop()) {
            Some(err) => Err(err.to_string()),
            None => Ok(module),
        }
    }

    /// Specializes `module`'s entry point with the kernel's constants for bindings of `layout`.
    fn compile_pipeline(
        &self,
        kernel: &Kernel,
        module: &wgpu::ShaderModule,
        layout: &wgpu::BindGroupLayout,
    ) -> std::result::Result<wgpu::ComputePipeline, String> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.entry),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
        self.created
            .pipelines
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: Some(&pipeline_layout),
                module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &kernel.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: self.driver_cache.as_ref().map(|c| c.cache()),
            });
        match pollster::block_on(scope.pop()) {
            Some(err) => Err(err.to_string()),
            None => Ok(pipeline),
        }
    }

    fn storage_layout(&self, writable: &[bool]) -> wgpu::BindGroupLayout {
        let storage = |i: usize, w: bool| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: !w },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries: Vec<_> = writable
            .iter()
            .enumerate()
            .map(|(i, &w)| storage(i, w))
            .collect();
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: writable.len() as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
        self.device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            })
    }
}
