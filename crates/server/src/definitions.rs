//! RabbitMQ's `load_definitions`: a definitions file, or a directory of them, imported at every
//! start once the data directory is open and before clients are accepted. RabbitMQ 3.10 imports
//! at every boot too (it skips an unchanged file only with `definitions.skip_if_unchanged`); an
//! import of an unchanged file changes nothing.

use std::path::{Path, PathBuf};

use anyhow::Context;
use warren_broker::Broker;

/// Imports the file at `path`, or every `.json` file of the directory at `path` in the order of
/// their names. A file that cannot be imported stops the start: the error names the file and
/// each entry at fault.
pub fn load(broker: &Broker, path: &Path) -> anyhow::Result<()> {
    for file in files(path)? {
        let json = std::fs::read(&file)
            .with_context(|| format!("reading the definitions file {} (load_definitions)", file.display()))?;
        // The broker logs what the import did, and each entry it skipped.
        broker.import_definitions(&json, crate::connection::now()).with_context(|| {
            format!("importing the definitions file {} (load_definitions)", file.display())
        })?;
        tracing::info!(file = %file.display(), "loaded definitions");
    }
    Ok(())
}

fn files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).with_context(|| {
        format!("listing the definitions directory {} (load_definitions)", path.display())
    })?;
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing the definitions directory {}", path.display()))?;
    files.retain(|f| f.extension().is_some_and(|ext| ext == "json") && f.is_file());
    files.sort();
    Ok(files)
}
