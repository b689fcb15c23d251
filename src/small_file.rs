//! Reading the small files an inventory names (TSIG and EAB keys, API keys, the zone template,
//! playbooks, adopted issuers) with a cap: each is a few lines, so a path that names a log, a
//! disk image or /dev/zero by mistake is refused instead of read into memory whole.

use std::io::Read;
use std::path::Path;

/// The most certorch reads of such a file.
pub const LIMIT: u64 = 1 << 20;

/// Reads `path` whole, up to [`LIMIT`] bytes; a longer file is an error that says so, for the
/// caller to wrap with what the file is for.
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(LIMIT + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > LIMIT {
        return Err(std::io::Error::other(format!(
            "the file is larger than {} MiB, far more than it should hold; certorch reads no further: check that the inventory names the right file",
            LIMIT >> 20
        )));
    }
    Ok(bytes)
}

/// [`read_bytes`] as UTF-8 text.
pub fn read(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_bytes(path)?).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_past_the_limit_is_refused_and_an_endless_one_too() {
        let dir = std::env::temp_dir().join(format!("certorch-small-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let at = dir.join("at-limit");
        std::fs::write(&at, vec![b'a'; LIMIT as usize]).unwrap();
        assert_eq!(read(&at).unwrap().len(), LIMIT as usize);
        let over = dir.join("over");
        std::fs::write(&over, vec![b'a'; LIMIT as usize + 1]).unwrap();
        let e = read(&over).unwrap_err().to_string();
        assert!(e.starts_with("the file is larger than 1 MiB"), "{e}");
        let e = read(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.starts_with("the file is larger than 1 MiB"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
