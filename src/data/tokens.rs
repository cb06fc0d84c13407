//! Token files: a flat little-endian `uint16` array (`.bin`), as nanoGPT's `prepare.py` writes them.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads a `.bin` token file.
pub fn read_tokens(path: &Path) -> Result<Vec<u32>> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    if bytes.len() % 2 != 0 {
        return Err(Error::Invalid(format!(
            "{}: {} bytes is not a whole number of uint16 tokens (truncated file?)",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32)
        .collect())
}

/// Writes a `.bin` token file; ids above 65,535 do not fit and are an error.
pub fn write_tokens(path: &Path, tokens: &[u32]) -> Result<()> {
    let mut bytes = Vec::with_capacity(tokens.len() * 2);
    for (pos, &t) in tokens.iter().enumerate() {
        let t = u16::try_from(t).map_err(|_| {
            Error::Unsupported(format!(
                "token id {t} at position {pos} does not fit a uint16 token file (vocabularies above 65,535 need another format)"
            ))
        })?;
        bytes.extend_from_slice(&t.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_round_trip_and_reject_odd_lengths() {
        let dir = std::env::temp_dir().join(format!("wgpt-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.bin");
        write_tokens(&path, &[0, 1, 65535, 42]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), [0, 0, 1, 0, 255, 255, 42, 0]);
        assert_eq!(read_tokens(&path).unwrap(), [0, 1, 65535, 42]);
        assert!(write_tokens(&path, &[65536]).is_err());
        std::fs::write(&path, [1, 2, 3]).unwrap();
        assert!(read_tokens(&path)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
