//! Model directories: `config.json` (Hugging Face `GPT2Config` keys) and `model.safetensors` (tensor names
//! and shapes as `GPT2LMHeadModel.save_pretrained` writes them), plus optional files (tokenizer, optimizer
//! state) that other modules hand over as bytes.
//!
//! Saving is atomic: the new directory is written aside and swapped in by renames, so a process killed
//! mid-save leaves the previous checkpoint whole (at `DIR`, or at `DIR.old` during the swap, which
//! loading falls back to).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::model::GptConfig;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// A model's parameters, in the order of [`GptConfig::params`].
pub struct Checkpoint {
    pub config: GptConfig,
    pub params: Vec<Vec<f32>>,
}

/// Writes `config.json`, `model.safetensors` and the `extra` files into `dir`, atomically.
pub fn save(
    dir: &Path,
    config: &GptConfig,
    params: &[Vec<f32>],
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    write_dir(dir, &model_files(config, params, extra)?)
}

/// A model directory's files as `(name, bytes)`: `config.json`, `model.safetensors`, then `extra`.
pub fn model_files(
    config: &GptConfig,
    params: &[Vec<f32>],
    extra: &[(&str, Vec<u8>)],
) -> Result<Vec<(String, Vec<u8>)>> {
    let specs = config.params();
    if specs.len() != params.len() {
        return Err(Error::shape(
            "saving a checkpoint",
            format!("{} tensors for a model of {}", params.len(), specs.len()),
        ));
    }
    let named: Vec<(&str, &[usize], &[f32])> = specs
        .iter()
        .zip(params)
        .map(|(spec, data)| (spec.name.as_str(), spec.shape.as_slice(), data.as_slice()))
        .collect();
    let weights = serialize(&named)?;
    let mut files = vec![
        (CONFIG_FILE.to_string(), config.to_json().into_bytes()),
        (WEIGHTS_FILE.to_string(), weights),
    ];
    files.extend(extra.iter().map(|(n, b)| (n.to_string(), b.clone())));
    Ok(files)
}

/// Whether `dir` holds a model directory to load (or `dir.old`, left by an interrupted save).
pub fn exists(dir: &Path) -> bool {
    existing_dir(dir).is_ok()
}

/// safetensors bytes holding f32 tensors `(name, shape, values)`, with the metadata transformers expects.
pub fn serialize(tensors: &[(&str, &[usize], &[f32])]) -> Result<Vec<u8>> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|&(name, shape, data)| {
            if data.len() != shape.iter().product::<usize>() {
                return Err(Error::shape(
                    name,
                    format!("{} values for shape {shape:?}", data.len()),
                ));
            }
            let view = safetensors::tensor::TensorView::new(
                Dtype::F32,
                shape.to_vec(),
                bytemuck::cast_slice(data),
            )
            .map_err(Error::safetensors(name))?;
            Ok((name.to_string(), view))
        })
        .collect::<Result<_>>()?;
    // transformers refuses safetensors files without this metadata.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(Error::safetensors("serializing tensors"))
}

/// The f32 values of tensor `name` of shape `shape` in safetensors `bytes` (from `source`, for errors).
pub fn tensor(bytes: &[u8], source: &str, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    read_tensor(&parse(bytes, source)?, source, name, shape)
}

/// `bytes` as a safetensors file.
fn parse<'a>(bytes: &'a [u8], source: &str) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(Error::safetensors(format!(
        "{source}: not a safetensors file (truncated?)"
    )))
}

/// Tensor `name` of `file`, checked to have `shape`, as f32.
fn read_tensor(file: &SafeTensors, source: &str, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let view = (file.tensor(name)).map_err(Error::safetensors(format!("{source}: {name}")))?;
    if view.shape() != shape {
        return Err(Error::shape(
            format!("{source}: {name}"),
            format!(
                "stored as {:?}, but the config implies {shape:?}",
                view.shape()
            ),
        ));
    }
    to_f32(view.dtype(), view.data())
        .map_err(|e| Error::Unsupported(format!("{source}: {name}: {e}")))
}

/// The `config.json` of a model directory alone (without reading the weights).
pub fn load_config(dir: &Path) -> Result<GptConfig> {
    let config_path = existing_dir(dir)?.join(CONFIG_FILE);
    GptConfig::from_json(
        &std::fs::read_to_string(&config_path).map_err(Error::io(&config_path))?,
        &config_path.display().to_string(),
    )
}

/// Reads a model directory written by wgpt or by transformers' `save_pretrained` (names with or without
/// the `transformer.` prefix; f32, f16 or bf16), checking every tensor's name and shape against the config.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let dir = existing_dir(dir)?;
    let config = load_config(&dir)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights_path).map_err(Error::io(&weights_path))?;
    let source = weights_path.display().to_string();
    let file = parse(&bytes, &source)?;
    let names: Vec<&str> = file.names();
    let params = config
        .params()
        .iter()
        .map(|spec| {
            let stored = [
                spec.name.as_str(),
                spec.name.trim_start_matches("transformer."),
            ]
            .into_iter()
            .find(|n| names.contains(n))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{source}: no tensor {} (the config asks for it)",
                    spec.name
                ))
            })?;
            read_tensor(&file, &source, stored, &spec.shape)
        })
        .collect::<Result<_>>()?;
    Ok(Checkpoint { config, params })
}

/// Reads an optional extra file of a model directory (`None` when absent).
pub fn read_extra(dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let path = existing_dir(dir)?.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::io(&path)(source)),
    }
}

fn to_f32(dtype: Dtype, data: &[u8]) -> std::result::Result<Vec<f32>, String> {
    let pairs = data
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]));
    Ok(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => pairs.map(|h| half::f16::from_bits(h).to_f32()).collect(),
        Dtype::BF16 => pairs.map(|h| half::bf16::from_bits(h).to_f32()).collect(),
        other => {
            return Err(format!(
                "dtype {other:?} is not supported (f32, f16, bf16 are)"
            ))
        }
    })
}

/// The directory to read: `dir`, or `dir.old` left by a save that was interrupted mid-swap.
fn existing_dir(dir: &Path) -> Result<PathBuf> {
    if dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    let old = sibling(dir, "old");
    if old.is_dir() {
        return Ok(old);
    }
    Err(Error::Invalid(format!(
        "{}: no such model directory",
        dir.display()
    )))
}

/// Writes `files` into `dir.tmp`, then swaps it in: `dir` → `dir.old`, `dir.tmp` → `dir`, remove
/// `dir.old`. A process killed at any moment leaves a whole directory at `dir` or, between the two
/// renames, at `dir.old` ([`load`] falls back to it): `dir` only ever appears by renaming a `dir.tmp`
/// whose files are all written, and `dir.old` is removed only while a whole `dir` exists.
pub fn write_dir(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let tmp = sibling(dir, "tmp");
    let old = sibling(dir, "old");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(Error::io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
    for (name, bytes) in files {
        let path = tmp.join(name);
        std::fs::write(&path, bytes).map_err(Error::io(&path))?;
    }
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(Error::io(&old))?;
        }
        std::fs::rename(dir, &old).map_err(Error::io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(Error::io(dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(Error::io(&old))?;
    }
    Ok(())
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> GptConfig {
        GptConfig {
            vocab_size: 11,
            n_positions: 8,
            n_embd: 16,
            n_layer: 2,
            n_head: 2,
            n_kv_head: 2,
            n_inner: 32,
            ..GptConfig::preset("gpt2").unwrap()
        }
    }

    fn values(config: &GptConfig) -> Vec<Vec<f32>> {
        config
            .params()
            .iter()
            .enumerate()
            .map(|(i, p)| (0..p.len()).map(|j| (i * 1000 + j) as f32).collect())
            .collect()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wgpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn saved_models_load_back_exactly_and_saves_replace_atomically() {
        let root = temp_dir("ckpt");
        let dir = root.join("model");
        let config = tiny();
        let params = values(&config);
        save(&dir, &config, &params, &[("extra.txt", b"hi".to_vec())]).unwrap();
        let back = load(&dir).unwrap();
        assert_eq!(back.config, config);
        assert_eq!(back.params, params);
        assert_eq!(read_extra(&dir, "extra.txt").unwrap().unwrap(), b"hi");
        assert_eq!(read_extra(&dir, "missing").unwrap(), None);
        // A second save replaces the first and leaves nothing beside it.
        let params2: Vec<Vec<f32>> = params
            .iter()
            .map(|p| p.iter().map(|v| v + 1.0).collect())
            .collect();
        save(&dir, &config, &params2, &[]).unwrap();
        assert_eq!(load(&dir).unwrap().params, params2);
        let entries: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert_eq!(entries.len(), 1);
        // A save interrupted mid-swap left only `model.old`: loading finds it.
        std::fs::rename(&dir, root.join("model.old")).unwrap();
        assert_eq!(load(&dir).unwrap().params, params2);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn bad_model_directories_are_errors_naming_the_problem() {
        let root = temp_dir("bad");
        let dir = root.join("model");
        let config = tiny();
        save(&dir, &config, &values(&config), &[]).unwrap();
        let weights = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights).unwrap();

        std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
        let err = load(&dir).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");

        // The config contradicts the weights: a wider embedding.
        std::fs::write(&weights, &bytes).unwrap();
        let wider = GptConfig {
            n_embd: 32,
            ..config.clone()
        };
        std::fs::write(dir.join(CONFIG_FILE), wider.to_json()).unwrap();
        let err = load(&dir).err().unwrap().to_string();
        assert!(
            err.contains("transformer.wte.weight: stored as [11, 16]"),
            "{err}"
        );

        std::fs::remove_file(dir.join(CONFIG_FILE)).unwrap();
        let err = load(&dir).err().unwrap().to_string();
        assert!(err.contains("config.json"), "{err}");

        assert!(load(&root.join("nothing-here")).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
