//! Pipelines cached by (shader, entry point, override constants), and the pre-built [`Dispatch`]es that
//! steps record: a pipeline, a bind group and a workgroup count, made once.

use std::collections::HashMap;

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};

/// One shader module, embedded in the binary: `shaders/<name>.wgsl`, after the files it uses.
///
/// WGSL has no includes, so a helper shared by several kernels (the dropout hash) lives in a file of its
/// own that [`shader!`](crate::shader) places before each file that uses it.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    /// The module's full source: the used files, then `shaders/<name>.wgsl`.
    pub source: &'static str,
    /// Stems of the files the source is made of, in order (the last is `name`).
    pub files: &'static [&'static str],
}

/// Embeds `shaders/<stem>.wgsl` as a [`Shader`] named `<stem>`, preceded by `shaders/<used>.wgsl` for each
/// stem in the optional list: `shader!("dropout", ["random"])`.
#[macro_export]
macro_rules! shader {
    ($stem:literal) => {
        $crate::shader!($stem, [])
    };
    ($stem:literal, [$($used:literal),*]) => {
        $crate::gpu::Shader {
            name: $stem,
            source: concat!(
                $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $used, ".wgsl")), "\n",)*
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $stem, ".wgsl"))
            ),
            files: &[$($used,)* $stem],
        }
    };
}

/// A specialized entry point: the pipeline cache key.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub shader: Shader,
    pub entry: &'static str,
    /// WGSL `override` constants (tile sizes, switches).
    pub constants: Vec<(&'static str, f64)>,
}

/// One storage-buffer binding, in the order of the WGSL `@binding`s. The kernel's uniform of parameters
/// always follows as the last binding.
#[derive(Clone, Copy)]
pub enum Binding<'a> {
    Read(&'a Tensor),
    ReadWrite(&'a Tensor),
}

type CacheKey = (
    &'static str,
    &'static str,
    Vec<(&'static str, u64)>,
    Vec<bool>,
);

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    pipelines: HashMap<CacheKey, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
}

/// A kernel launch with everything bound: recording it is all a step does.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

impl Dispatch {
    /// Builds the pipeline (cached), a uniform holding `params` and the bind group.
    pub fn new<P: Pod>(
        gpu: &Gpu,
        kernel: &Kernel,
        bindings: &[Binding],
        params: &P,
        workgroups: [u32; 3],
    ) -> Result<Self> {
        let label = format!("{}/{}", kernel.shader.name, kernel.entry);
        let max = gpu.limits().max_compute_workgroups_per_dimension;
        if let Some(&over) = workgroups.iter().find(|&&n| n > max) {
            return Err(Error::Limit {
                what: label,
                limit: "max_compute_workgroups_per_dimension",
                needed: over as u64,
                allowed: max as u64,
                adapter: gpu.info().name.clone(),
            });
        }
        let writable: Vec<bool> = bindings
            .iter()
            .map(|b| matches!(b, Binding::ReadWrite(_)))
            .collect();
        check_usage(&label, bindings)?;
        let (pipeline, layout) = gpu.pipeline(kernel, &writable)?;
        gpu.created
            .buffers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        gpu.created
            .bind_groups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uniform = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&label),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (Binding::Read(t) | Binding::ReadWrite(t)) = b;
                wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: t.binding(),
                }
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: bindings.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: &layout,
            entries: &entries,
        });
        Ok(Dispatch {
            label,
            pipeline,
            bind_group,
            workgroups,
        })
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass) {
        if self.workgroups.contains(&0) {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Records `dispatches` into one compute pass of `encoder`.
    pub fn record_all(encoder: &mut wgpu::CommandEncoder, dispatches: &[Dispatch]) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for d in dispatches {
            d.record(&mut pass);
        }
    }
}

/// WebGPU forbids binding one buffer both read-only and writable in a dispatch, even at disjoint ranges:
/// a kernel may not read one view of an arena while writing another view of the same arena.
fn check_usage(label: &str, bindings: &[Binding]) -> Result<()> {
    for (i, b) in bindings.iter().enumerate() {
        let Binding::ReadWrite(written) = b else {
            continue;
        };
        for (j, other) in bindings.iter().enumerate() {
            if let Binding::Read(read) = other {
                if read.buffer == written.buffer {
                    return Err(Error::gpu(
                        label,
                        format!(
                            "binding {j} reads and binding {i} writes the same buffer; \
                             WebGPU needs them in different buffers"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

impl Gpu {
    /// Records `dispatches` in one pass, submits and waits.
    pub fn run_dispatches(&self, dispatches: &[Dispatch]) -> Result<()> {
        self.run(|commands| commands.dispatch(dispatches))
    }

    /// The compiled pipeline for `kernel` with storage bindings of the given writability followed by
    /// one uniform; compiled on first use and cached. Compile errors come back as [`Error::Gpu`].
    pub(crate) fn pipeline(
        &self,
        kernel: &Kernel,
        writable: &[bool],
    ) -> Result<(wgpu::ComputePipeline, wgpu::BindGroupLayout)> {
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
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| Error::gpu("pipeline cache", "poisoned by an earlier panic"))?;
        if let Some(hit) = cache.pipelines.get(&key) {
            return Ok(hit.clone());
        }
        let what = format!("compiling {}/{}", kernel.shader.name, kernel.entry);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = cache
            .modules
            .entry(kernel.shader.name)
            .or_insert_with(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(kernel.shader.name),
                        source: wgpu::ShaderSource::Wgsl(kernel.shader.source.into()),
                    })
            })
            .clone();
        let layout = self.storage_layout(writable);
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.entry),
                bind_group_layouts: &[Some(&layout)],
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
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &kernel.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(err) = pollster::block_on(scope.pop()) {
            cache.modules.remove(kernel.shader.name);
            return Err(Error::gpu(what, err));
        }
        cache
            .pipelines
            .insert(key, (pipeline.clone(), layout.clone()));
        Ok((pipeline, layout))
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
