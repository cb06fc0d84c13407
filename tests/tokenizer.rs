//! Tokenizers: GPT-2's BPE against tiktoken's ids, round trips, and trained BPE vocabularies.
//!
//! The expected ids in tests/data/tokenizer_corpus.gpt2.json come from Python tiktoken (built offline
//! from data/gpt2.tiktoken); regenerate them with `python scripts/tiktoken_ids.py` after changing the
//! corpus.

use sha2::{Digest, Sha256};
use wgpt::data::Tokenizer;

const CORPUS: &str = include_str!("data/tokenizer_corpus.txt");
const SHAKESPEARE: &str = include_str!("../data/tinyshakespeare.txt");

fn expected() -> serde_json::Value {
    serde_json::from_str(include_str!("data/tokenizer_corpus.gpt2.json")).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_of_u16(ids: &[u32]) -> String {
    let bytes: Vec<u8> = ids
        .iter()
        .flat_map(|&id| u16::try_from(id).unwrap().to_le_bytes())
        .collect();
    hex(&Sha256::digest(&bytes))
}

/// Where two id sequences first differ, with the text around it, for a failure message.
fn first_difference(tokenizer: &Tokenizer, got: &[u32], want: &[u32]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let window = |ids: &[u32]| {
        let ids = &ids[at.saturating_sub(3)..(at + 4).min(ids.len())];
        let texts: Vec<String> = ids.iter().map(|&i| tokenizer.token_text(i)).collect();
        format!("{ids:?} {texts:?}")
    };
    format!(
        "lengths {} vs {}, first difference at {at}: got {} want {}",
        got.len(),
        want.len(),
        window(got),
        window(want)
    )
}

#[test]
fn the_built_in_gpt2_table_is_tiktokens_r50k_base() {
    let table = include_bytes!("../data/gpt2.tiktoken");
    assert_eq!(
        hex(&Sha256::digest(table)),
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
    );
}

#[test]
fn gpt2_encodes_the_varied_corpus_exactly_as_tiktoken() {
    let gpt2 = Tokenizer::gpt2();
    assert_eq!(gpt2.vocab_size(), 50257);
    let want: Vec<u32> = serde_json::from_value(expected()["corpus_ids"].clone()).unwrap();
    let got = gpt2.encode(CORPUS).unwrap();
    assert!(got == want, "{}", first_difference(&gpt2, &got, &want));
    assert_eq!(gpt2.decode(&got), CORPUS);
}

#[test]
fn gpt2_encodes_all_of_tiny_shakespeare_exactly_as_tiktoken() {
    let gpt2 = Tokenizer::gpt2();
    let want = &expected()["tinyshakespeare"];
    let ids = gpt2.encode(SHAKESPEARE).unwrap();
    assert_eq!(ids.len() as u64, want["tokens"].as_u64().unwrap());
    assert_eq!(sha256_of_u16(&ids), want["sha256"].as_str().unwrap());
    assert_eq!(gpt2.decode(&ids), SHAKESPEARE);
}

#[test]
fn gpt2_special_and_single_tokens_have_tiktokens_ids() {
    let gpt2 = Tokenizer::gpt2();
    assert_eq!(gpt2.token_id("<|endoftext|>"), Some(50256));
    assert_eq!(gpt2.encode("a<|endoftext|>b").unwrap(), [64, 50256, 65]);
    assert_eq!(gpt2.encode("Hello world").unwrap(), [15496, 995]);
    assert_eq!(gpt2.token_id(" the"), Some(262));
    assert_eq!(gpt2.token_text(262), " the");
    assert_eq!(gpt2.token_id("not one token"), None);
    // A lone byte of a multi-byte character reads as U+FFFD; together they are the character.
    let ids = gpt2.encode("😀").unwrap();
    assert!(ids.len() > 1 && gpt2.token_text(ids[0]) == "\u{FFFD}");
    assert_eq!(gpt2.decode_bytes(&ids), "😀".as_bytes());
    assert_eq!(gpt2.decode(&[50257]), "\u{FFFD}");
    assert!(gpt2.encode("").unwrap().is_empty());
}

#[test]
fn gpt2_round_trips_a_saved_hugging_face_file() {
    let gpt2 = Tokenizer::gpt2();
    let back = Tokenizer::from_json(&gpt2.to_json(), "gpt2.json").unwrap();
    assert_eq!(back.vocab_size(), 50257);
    assert_eq!(back.encode(CORPUS).unwrap(), gpt2.encode(CORPUS).unwrap());
    assert_eq!(back.to_json(), gpt2.to_json());
}

#[test]
fn gpt2_loads_from_a_file_laid_out_as_the_hugging_face_hubs() {
    // The hub's gpt2/tokenizer.json predates some fields: no model type, empty affixes, no use_regex,
    // <|endoftext|> "normalized", a post-processor adding a prefix space (which encoding ignores).
    let gpt2 = Tokenizer::gpt2();
    let mut file: serde_json::Value = serde_json::from_str(&gpt2.to_json()).unwrap();
    let model = file["model"].as_object_mut().unwrap();
    for key in ["type", "byte_fallback", "ignore_merges"] {
        model.remove(key);
    }
    model.insert("continuing_subword_prefix".into(), "".into());
    model.insert("end_of_word_suffix".into(), "".into());
    file["pre_tokenizer"] = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false,
                                               "trim_offsets": true});
    file["post_processor"] = serde_json::json!({"type": "ByteLevel", "add_prefix_space": true,
                                                "trim_offsets": false});
    file["added_tokens"][0]["normalized"] = true.into();
    let hub = Tokenizer::from_json(&file.to_string(), "hub/tokenizer.json").unwrap();
    assert_eq!(hub.encode(CORPUS).unwrap(), gpt2.encode(CORPUS).unwrap());

    file["pre_tokenizer"]["add_prefix_space"] = true.into();
    let err = Tokenizer::from_json(&file.to_string(), "hub/tokenizer.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("prefix space"), "{err}");
}

#[test]
fn a_trained_bpe_has_the_exact_size_single_special_ids_and_survives_saving() {
    let specials = ["<|startoftext|>", "<|endoftext|>"];
    let mut seen = 0;
    let mut progress = |done: usize, total: usize| {
        assert!(done <= total && total == 1000 - 258);
        seen = done;
    };
    let text = &SHAKESPEARE[..100_000];
    let bpe = Tokenizer::train_bpe(text, 1000, &specials, Some(&mut progress)).unwrap();
    assert_eq!(seen, 1000 - 258);
    assert_eq!(bpe.vocab_size(), 1000);
    assert_eq!(bpe.token_id("<|startoftext|>"), Some(998));
    assert_eq!(bpe.token_id("<|endoftext|>"), Some(999));
    assert_eq!(bpe.token_id("a"), Some(97), "ids 0..256 are the bytes");
    let ids = bpe
        .encode("<|startoftext|>First Citizen:<|endoftext|>")
        .unwrap();
    assert_eq!((ids[0], *ids.last().unwrap()), (998, 999));
    assert!(
        ids.len() < 10,
        "merges learned from the text apply: {ids:?}"
    );
    for sample in [CORPUS, text] {
        let encoded = bpe.encode(sample).unwrap();
        assert_eq!(bpe.decode(&encoded), sample);
    }

    let path = std::env::temp_dir().join(format!("wgpt-tok-{}.json", std::process::id()));
    bpe.save(&path).unwrap();
    let back = Tokenizer::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back.encode(CORPUS).unwrap(), bpe.encode(CORPUS).unwrap());
    assert_eq!(back.vocab_size(), 1000);

    // Training is deterministic.
    let again = Tokenizer::train_bpe(text, 1000, &specials, None).unwrap();
    assert_eq!(again.to_json(), bpe.to_json());
}

#[test]
fn training_rejects_sizes_it_cannot_meet() {
    let err = Tokenizer::train_bpe("abc", 257, &["<|a|>", "<|b|>"], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("too small") && err.contains("258"), "{err}");
    // "abab" learns (a, b) and then (ab, ab), nothing more.
    let err = Tokenizer::train_bpe("abab", 300, &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("allows only 2 merges"), "{err}");
}

#[test]
fn the_character_format_still_loads() {
    let chars = Tokenizer::from_json(r#"{"type":"char","chars":["\n"," ","a","b"]}"#, "t").unwrap();
    assert_eq!(chars.vocab_size(), 4);
    assert_eq!(chars.encode("ab a\n").unwrap(), [2, 3, 1, 2, 0]);
    assert_eq!(chars.token_id("b"), Some(3));
    let err = Tokenizer::from_json(r#"{"model":{"type":"WordPiece"}}"#, "t.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("t.json") && err.contains("BPE"), "{err}");
}
