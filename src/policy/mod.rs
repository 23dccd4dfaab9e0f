//! Policies: the file format ([`spec`]), reading files ([`load`]) and the compiled,
//! validated form the engine uses ([`compile`]).
//!
//! Loading has two stages. Stage one deserializes strictly (unknown fields are
//! refused). Stage two validates every value and compiles the matchers once; it
//! reports every error it finds, each with file, line and field, so that one run of
//! `imagegate policy validate` shows everything to fix.

pub mod compile;
pub mod load;
pub mod signatures;
pub mod spec;

use std::fmt;
use std::path::{Path, PathBuf};

pub use compile::{Policy, PolicySet};
pub use load::{PolicySource, load_path, load_sources};
pub use spec::Mode;

/// One problem in the policy files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// The field, as a path (`spec.registries.allow[0]`); empty for a whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} error{} in the policy files:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl PolicyErrors {
    pub(crate) fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        PolicyErrors(vec![PolicyError {
            file: file.to_path_buf(),
            line: None,
            field: String::new(),
            message: message.into(),
        }])
    }
}

/// Reads and compiles the policies at `path` (a file or a directory).
pub fn load(path: &Path) -> Result<PolicySet, PolicyErrors> {
    let sources = load_path(path)?;
    PolicySet::compile(&sources)
}
