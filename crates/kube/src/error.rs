//! The one error type of this crate: each variant is one line naming where
//! the problem is (file, document, field path).

use std::fmt;

use crate::validate::FieldErrors;

/// Where an object came from: the source (a path or `-`) and the document's
/// position in it, 1-based and counting empty documents, plus the item's
/// position, 1-based, when the document is a `kind: List`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub source: String,
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} document {}", self.source, self.document)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no .yaml, .yml or .json files")]
    EmptyDirectory { path: String },
    #[error("{at}: syntax error at line {line} column {column}: {message}")]
    Syntax {
        at: Location,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{at}: is not an object (a manifest is a mapping with apiVersion and kind)")]
    NotAnObject { at: Location },
    #[error("{at}: missing apiVersion")]
    MissingApiVersion { at: Location },
    #[error("{at}: missing kind")]
    MissingKind { at: Location },
    #[error(
        "{at}: unsupported kind {kind:?} (apiVersion {api_version}): peapod runs Pod, Job, Deployment, ReplicaSet, ConfigMap and Secret"
    )]
    UnsupportedKind {
        at: Location,
        kind: String,
        api_version: String,
    },
    #[error("{at}: {kind} must be {expected} (got apiVersion {api_version})")]
    WrongApiVersion {
        at: Location,
        kind: String,
        expected: String,
        api_version: String,
    },
    #[error("{at}: a List needs an items array")]
    BadList { at: Location },
    #[error("{at}: {path}: {message}")]
    WrongType {
        at: Location,
        kind: String,
        path: String,
        message: String,
    },
    #[error("{at}: unknown field {field:?} at {path}{}", more_unknown(*.more))]
    UnknownField {
        at: Location,
        field: String,
        path: String,
        /// How many other unknown fields the same object has.
        more: usize,
    },
    #[error("{at}: {kind} {name:?} is invalid: {errors}")]
    Invalid {
        at: Location,
        kind: String,
        name: String,
        errors: FieldErrors,
    },
}

fn more_unknown(more: usize) -> String {
    match more {
        0 => String::new(),
        1 => " (and 1 more unknown field)".to_string(),
        n => format!(" (and {n} more unknown fields)"),
    }
}
