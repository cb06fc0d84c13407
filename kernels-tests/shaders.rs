//! Every shader parses, validates and translates to the languages of the other backends: SPIR-V
//! (Vulkan), MSL (Metal), HLSL (DX12) and GLSL (GL). This is how Metal and DX12 portability is checked on
//! a machine that has neither.

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use wgpt::kernels::SHADERS;

fn shader_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("listing shaders/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no shaders in {}", dir.display());
    files
}

#[test]
fn every_shader_file_is_part_of_a_kernel_module() {
    for path in shader_files() {
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        assert!(
            SHADERS.iter().any(|s| s.files.contains(&stem.as_str())),
            "{} is in no module of wgpt::kernels::SHADERS, so nothing compiles or checks it",
            path.display()
        );
    }
}

#[test]
fn every_shader_translates_to_spirv_msl_hlsl_and_glsl() {
    for shader in SHADERS {
        let name = format!("shaders/{}.wgsl", shader.name);
        let source = shader.source;
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string_with_path(source, &name)));
        // Subgroup operations are optional features: validate with every capability, as a device that
        // has them would; wgpu refuses the subgroup entry points on one that does not.
        let info = Validator::new(ValidationFlags::all(), Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string_with_path(source, &name)));
        // Backends need override constants resolved; the shaders' defaults are what is checked here.
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            None,
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));

        spv::write_vec(&module, &info, &spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("{name}: SPIR-V: {e}"));

        let msl_options = msl::Options {
            lang_version: (2, 4),
            ..Default::default()
        };
        msl::write_string(
            &module,
            &info,
            &msl_options,
            &msl::PipelineOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: MSL: {e}"));

        let hlsl_options = hlsl::Options {
            shader_model: hlsl::ShaderModel::V6_0,
            ..Default::default()
        };
        let pipeline_options = hlsl::PipelineOptions::default();
        let mut hlsl_out = String::new();
        hlsl::Writer::new(&mut hlsl_out, &hlsl_options, &pipeline_options)
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{name}: HLSL: {e}"));

        for entry in &module.entry_points {
            let glsl_options = glsl::Options {
                version: glsl::Version::Embedded {
                    version: 310,
                    is_webgl: false,
                },
                ..Default::default()
            };
            let pipeline = glsl::PipelineOptions {
                shader_stage: entry.stage,
                entry_point: entry.name.clone(),
                multiview: None,
            };
            let mut out = String::new();
            glsl::Writer::new(
                &mut out,
                &module,
                &info,
                &glsl_options,
                &pipeline,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .and_then(|mut w| w.write())
            .unwrap_or_else(|e| panic!("{name}: GLSL ({}): {e}", entry.name));
        }
    }
}
