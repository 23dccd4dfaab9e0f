//! Reading policy files from disk.
//!
//! A path is a file or a directory. In a directory every `*.yaml`/`*.yml` file is
//! read, in name order, without descending into hidden entries: a Kubernetes
//! ConfigMap volume keeps its real files under `..data/` and exposes them through
//! symlinks, which are followed.
//!
//! A file is read whole, up to [`MAX_FILE_BYTES`], and must be UTF-8: a file that
//! is not is refused with the line and byte offset of the first invalid byte, so
//! that a corrupted ConfigMap is found, not guessed at.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{PolicyError, PolicyErrors};

/// The largest policy file read. A ConfigMap holds at most 1 MiB in all.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The text of one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub path: PathBuf,
    pub text: String,
}

/// Reads the policy files at `path`. Their content is what a reload compares.
pub fn load_path(path: &Path) -> Result<Vec<PolicySource>, PolicyErrors> {
    let meta = std::fs::metadata(path)
        .map_err(|e| PolicyErrors::whole_file(path, format!("cannot read: {e}")))?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        collect(path, 0, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(PolicyErrors::whole_file(
                path,
                "the directory holds no .yaml or .yml policy file",
            ));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .into_iter()
        .map(|file| {
            let text = read(&file)?;
            Ok(PolicySource { path: file, text })
        })
        .collect()
}

/// Reads one file: at most [`MAX_FILE_BYTES`], and UTF-8.
fn read(file: &Path) -> Result<String, PolicyErrors> {
    let cannot = |e: std::io::Error| PolicyErrors::whole_file(file, format!("cannot read: {e}"));
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .map_err(cannot)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(PolicyErrors::whole_file(
            file,
            format!(
                "the file is larger than {} MiB, which no policy file needs: check that the path names policy files",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        PolicyErrors(vec![not_utf8(file, bytes, at)])
    })
}

/// `x.yaml:7: byte 123: the file is not valid UTF-8 ...`: the line of the first
/// invalid byte, and its offset from the start of the file (0-based, as `cmp`,
/// `xxd` and `dd skip=` count).
fn not_utf8(file: &Path, bytes: &[u8], at: usize) -> PolicyError {
    let line = bytes[..at].iter().filter(|b| **b == b'\n').count() as u64 + 1;
    PolicyError {
        file: file.to_path_buf(),
        line: Some(line),
        field: String::new(),
        message: format!(
            "byte {at}: the file is not valid UTF-8 (byte 0x{:02x}); a policy file is YAML text: save it as UTF-8, or restore it if it was corrupted",
            bytes[at]
        ),
    }
}

/// Wraps in-memory texts (tests, stdin) as sources.
pub fn load_sources(texts: &[(&str, &str)]) -> Vec<PolicySource> {
    texts
        .iter()
        .map(|(path, text)| PolicySource {
            path: PathBuf::from(path),
            text: text.to_string(),
        })
        .collect()
}

/// How deep directories are followed: a ConfigMap volume is two levels deep, and a
/// symlink loop (`sub -> ..`) must end in an error, not a stack overflow.
const MAX_DEPTH: usize = 8;

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), PolicyErrors> {
    if depth > MAX_DEPTH {
        return Err(PolicyErrors::whole_file(
            dir,
            format!("directories nest more than {MAX_DEPTH} levels deep (a symlink loop?)"),
        ));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| PolicyErrors::whole_file(dir, format!("cannot list: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| PolicyErrors::whole_file(dir, e.to_string()))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // metadata() follows symlinks, as a ConfigMap volume needs.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            collect(&path, depth + 1, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        let err = load_path(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a symlink loop?"), "{err}");
    }

    #[test]
    fn reads_yaml_files_in_name_order_and_skips_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("b.yaml"), "b").unwrap();
        std::fs::write(d.join("a.yml"), "a").unwrap();
        std::fs::write(d.join("notes.txt"), "x").unwrap();
        std::fs::create_dir(d.join("..data")).unwrap();
        std::fs::write(d.join("..data/c.yaml"), "c").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/d.yaml"), "d").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(d.join("..data/c.yaml"), d.join("c.yaml")).unwrap();
        let texts: Vec<String> = load_path(d).unwrap().into_iter().map(|s| s.text).collect();
        assert_eq!(texts, ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_with_its_line_and_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let good = "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\n";
        // (bytes, line, offset, byte)
        let table: Vec<(Vec<u8>, u64, usize, u8)> = vec![
            (vec![0xff], 1, 0, 0xff),
            (
                [good.as_bytes(), b"metadata: {name: \xe9t\xe9}\n"].concat(),
                3,
                good.len() + 17,
                0xe9,
            ),
            // A multi-byte character cut short: the offset is where it starts.
            (
                [good.as_bytes(), "# café".as_bytes(), b"\n\xc3"].concat(),
                4,
                good.len() + 8,
                0xc3,
            ),
            // UTF-16, as some editors save.
            (vec![0xff, 0xfe, b'a', 0], 1, 0, 0xff),
        ];
        for (bytes, line, at, byte) in table {
            let path = dir.path().join("x.yaml");
            std::fs::write(&path, &bytes).unwrap();
            let errors = load_path(&path).unwrap_err();
            assert_eq!(errors.0.len(), 1);
            let err = &errors.0[0];
            assert_eq!(err.line, Some(line), "{err}");
            let expected = format!(
                "{}:{line}: byte {at}: the file is not valid UTF-8 (byte 0x{byte:02x}); a policy file is YAML text",
                path.display()
            );
            assert!(
                err.to_string().starts_with(&expected),
                "{err}\nexpected: {expected}"
            );
        }
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let err = load_path(&path).unwrap_err().to_string();
        assert!(err.contains("larger than 4 MiB"), "{err}");
        std::fs::write(&path, vec![b'#'; MAX_FILE_BYTES as usize]).unwrap();
        assert!(load_path(&path).is_ok());
    }

    #[test]
    fn a_missing_path_or_empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_path(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        let err = load_path(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no .yaml or .yml"), "{err}");
    }
}
