//! Hugging Face `tokenizer.json` for byte-level BPE: what `tokenizers.Tokenizer.from_file` loads and
//! what GPT-2's own file holds. Tokens are written through GPT-2's byte-to-printable-character map
//! (`bytes_to_unicode`), so a space is `Ġ` and a newline `Ċ`; special tokens keep their text.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::bpe::Bpe;
use crate::error::{Error, Result};

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68 bytes for
/// U+0100 onwards, in byte order.
fn byte_chars() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut chars = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        chars[b as usize] = if printable(b) {
            b as char
        } else {
            next += 1;
            char::from_u32(next - 1).expect("U+0100..U+0143 are characters")
        };
    }
    chars
}

fn to_printable(bytes: &[u8], map: &[char; 256]) -> String {
    bytes.iter().map(|&b| map[b as usize]).collect()
}

/// The `tokenizer.json` of a byte-level BPE (merges written as `"a b"` strings, which every version of
/// `tokenizers` reads).
pub fn to_json(bpe: &Bpe) -> Value {
    let map = byte_chars();
    let special = bpe.special();
    let is_special = |id: usize| special.iter().any(|&(_, s)| s as usize == id);
    let names: Vec<String> = bpe
        .tokens()
        .iter()
        .enumerate()
        .map(|(id, bytes)| match is_special(id) {
            true => String::from_utf8_lossy(bytes).into_owned(),
            false => to_printable(bytes, &map),
        })
        .collect();
    let vocab: serde_json::Map<String, Value> = names
        .iter()
        .enumerate()
        .map(|(id, name)| (name.clone(), json!(id)))
        .collect();
    let merges: Vec<String> = bpe
        .merges()
        .iter()
        .map(|&(a, b)| format!("{} {}", names[a as usize], names[b as usize]))
        .collect();
    let added: Vec<Value> = special
        .iter()
        .map(|(text, id)| {
            json!({"id": id, "content": text, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                            "use_regex": true});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": merges,
        },
    })
}

/// Reads a byte-level BPE `tokenizer.json` (merges as `"a b"` strings or `["a", "b"]` pairs; the model's
/// `"type": "BPE"` may be missing, as in GPT-2's file on the Hugging Face hub). Settings
/// this tokenizer does not implement (a normalizer, a prefix space, another pre-tokenizer) are errors
/// rather than silently different ids.
pub fn from_json(value: &Value, source: &str) -> Result<Bpe> {
    let bad = |why: String| Error::Invalid(format!("{source}: {why}"));
    let unsupported = |why: String| Error::Unsupported(format!("{source}: {why}"));
    let model = &value["model"];
    // Older files (GPT-2's own on the Hugging Face hub) leave out the type; a BPE has vocab and merges.
    let untyped_bpe = model.get("type").is_none() && model["merges"].is_array();
    if model["type"] != "BPE" && !untyped_bpe {
        return Err(unsupported(
            "\"model\" is not a BPE model (only byte-level BPE and char tokenizers load)".into(),
        ));
    }
    for affix in ["continuing_subword_prefix", "end_of_word_suffix"] {
        if !(model[affix].is_null() || model[affix] == "") {
            return Err(unsupported(format!("a BPE {affix} is not supported")));
        }
    }
    if !value["normalizer"].is_null() {
        return Err(unsupported("a \"normalizer\" is not supported".into()));
    }
    let pre = &value["pre_tokenizer"];
    let ok_pre =
        pre["type"] == "ByteLevel" && pre["add_prefix_space"] != true && pre["use_regex"] != false;
    if !ok_pre {
        return Err(unsupported(format!(
            "pre_tokenizer {pre} is not ByteLevel with GPT-2's regex and no prefix space"
        )));
    }
    let specials: HashMap<u32, String> = value["added_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| match (t["id"].as_u64(), t["content"].as_str()) {
            (Some(id), Some(text)) => Ok((id as u32, text.to_string())),
            _ => Err(bad(format!("added token {t} has no id or content"))),
        })
        .collect::<Result<_>>()?;

    let unmap: HashMap<char, u8> = byte_chars()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| bad("model has no \"vocab\" object".into()))?;

    // Every id 0..n must name exactly one token: the vocab's, or an added token beyond it.
    let n = vocab
        .values()
        .filter_map(Value::as_u64)
        .chain(specials.keys().map(|&id| id as u64))
        .max()
        .map_or(0, |m| m as usize + 1);
    // Checked before allocating: an id far past the entries (a corrupt file) would ask for gigabytes.
    if n > vocab.len() + specials.len() {
        return Err(bad(format!(
            "ids run up to {} but there are {} tokens (ids must run 0..n with no gaps)",
            n - 1,
            vocab.len() + specials.len()
        )));
    }
    let mut tokens: Vec<Option<Vec<u8>>> = vec![None; n];
    for (name, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| bad(format!("vocab entry {name:?} has no integer id")))?
            as usize;
        let bytes = match specials.get(&(id as u32)) {
            Some(text) => text.as_bytes().to_vec(),
            None => name
                .chars()
                .map(|c| unmap.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| bad(format!("vocab entry {name:?} is not byte-level")))?,
        };
        if tokens[id].replace(bytes).is_some() {
            return Err(bad(format!("id {id} names two tokens")));
        }
    }
    for (&id, text) in &specials {
        tokens[id as usize].get_or_insert_with(|| text.as_bytes().to_vec());
    }
    let tokens = tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| t.ok_or_else(|| bad(format!("no token has id {id} (ids must run 0..{n})"))))
        .collect::<Result<Vec<_>>>()?;

    let by_name: HashMap<&str, u32> = vocab
        .iter()
        .filter_map(|(name, id)| id.as_u64().map(|id| (name.as_str(), id as u32)))
        .collect();
    let id_of = |name: &str| {
        by_name
            .get(name)
            .copied()
            .ok_or_else(|| bad(format!("merge names {name:?}, which is not in the vocab")))
    };
    let merges = model["merges"]
        .as_array()
        .ok_or_else(|| bad("model has no \"merges\" list".into()))?
        .iter()
        .map(|m| {
            let (a, b) = match m {
                Value::String(s) => s
                    .split_once(' ')
                    .ok_or_else(|| bad(format!("merge {s:?} is not \"a b\"")))?,
                Value::Array(pair) => match (
                    pair.first().and_then(Value::as_str),
                    pair.get(1).and_then(Value::as_str),
                ) {
                    (Some(a), Some(b)) if pair.len() == 2 => (a, b),
                    _ => return Err(bad(format!("merge {m} is not a pair of strings"))),
                },
                _ => return Err(bad(format!("merge {m} is neither \"a b\" nor [a, b]"))),
            };
            Ok((id_of(a)?, id_of(b)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut special_ids: Vec<u32> = specials.keys().copied().collect();
    special_ids.sort_unstable();
    Bpe::new(tokens, merges, &special_ids).map_err(|e| bad(e.to_string()))
}
