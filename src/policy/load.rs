//! Reading policy files from disk.
//!
//! A path is a file or a directory. In a directory every `*.yaml`/`*.yml` file is
//! read, in name order, without descending into hidden entries: a Kubernetes
//! ConfigMap volume keeps its real files under `..data/` and exposes them through
//! symlinks, which are followed.

use std::path::{Path, PathBuf};

use super::PolicyErrors;

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
        collect(path, &mut files)?;
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
            let text = std::fs::read_to_string(&file)
                .map_err(|e| PolicyErrors::whole_file(&file, format!("cannot read: {e}")))?;
            Ok(PolicySource { path: file, text })
        })
        .collect()
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

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PolicyErrors> {
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
            collect(&path, out)?;
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
    fn a_missing_path_or_empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_path(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        let err = load_path(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no .yaml or .yml"), "{err}");
    }
}
