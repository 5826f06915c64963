//! The dashboard's files, embedded at compile time from `assets/`, with their content types.
//! A unit test checks that every file under `assets/` is listed here, so a new page cannot be
//! forgotten.

use std::sync::OnceLock;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its path under `assets/` (and under `/` in URLs).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

impl Asset {
    /// A strong validator for the bytes: FNV-1a over them, quoted.
    pub fn etag(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.body {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("\"{hash:016x}\"")
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! assets {
    ($($path:literal => $content_type:expr,)*) => {
        &[$(Asset { path: $path, content_type: $content_type, body: include_bytes!(concat!("assets/", $path)) },)*]
    };
}

/// Every file of the dashboard.
pub static ASSETS: &[Asset] = assets! {
    "index.html" => HTML,
    "favicon.svg" => SVG,
    "css/style.css" => CSS,
    "js/app.js" => JS,
    "js/api.js" => JS,
    "js/ui.js" => JS,
    "js/format.js" => JS,
    "js/chart.js" => JS,
    "js/roles.js" => JS,
    "js/permissions.js" => JS,
    "js/limits.js" => JS,
    "js/pages/login.js" => JS,
    "js/pages/overview.js" => JS,
    "js/pages/queues.js" => JS,
    "js/pages/queue.js" => JS,
    "js/pages/exchanges.js" => JS,
    "js/pages/exchange.js" => JS,
    "js/pages/connections.js" => JS,
    "js/pages/connection.js" => JS,
    "js/pages/channels.js" => JS,
    "js/pages/channel.js" => JS,
    "js/pages/users.js" => JS,
    "js/pages/user.js" => JS,
    "js/pages/vhosts.js" => JS,
    "js/pages/vhost.js" => JS,
    "js/pages/policies.js" => JS,
    "js/pages/limits.js" => JS,
    "js/pages/definitions.js" => JS,
};

/// The asset at `path` (relative, without a leading `/`).
pub(super) fn find(path: &str) -> Option<&'static Asset> {
    static INDEX: OnceLock<std::collections::HashMap<&'static str, &'static Asset>> = OnceLock::new();
    INDEX.get_or_init(|| ASSETS.iter().map(|a| (a.path, a)).collect()).get(path).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                files_under(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_file_under_assets_is_served_and_every_entry_exists() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dashboard/assets");
        let mut on_disk = Vec::new();
        files_under(&dir, "", &mut on_disk);
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "src/dashboard/assets.rs must list exactly the files under assets/");
    }

    #[test]
    fn lookups_and_validators() {
        assert_eq!(find("js/app.js").unwrap().content_type, JS);
        assert!(find("../Cargo.toml").is_none());
        let etag = find("index.html").unwrap().etag();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18, "{etag}");
    }
}
