//! The problems of one settings load: each is placed at the position of a key
//! path such as `identity.networks[0].cidr` (`FILE:LINE:COL: message`) and
//! all are collected before the load fails.
//!
//! Limits: positions come from `crate::yaml_source::YamlDoc`; a path it does
//! not know falls back to its nearest parent. Used by every section parser of
//! `settings/` and by [`super::Settings::from_yaml`].

use crate::yaml_source::{ConfigError, ConfigErrors, YamlDoc};

pub(super) struct Problems<'a> {
    doc: &'a YamlDoc,
    errors: Vec<ConfigError>,
}

impl<'a> Problems<'a> {
    /// No problems yet with `doc`.
    pub(super) fn new(doc: &'a YamlDoc) -> Problems<'a> {
        Problems {
            doc,
            errors: Vec::new(),
        }
    }

    /// A problem with the value at `path`.
    pub(super) fn at(&mut self, path: &str, message: String) {
        self.errors.push(self.doc.error_at(path, message));
    }

    /// `value` when nothing was reported, else every problem.
    pub(super) fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}
