//! Fault injection at the store's write and fsync sites, for tests (the `fail` crate; compiled
//! to nothing unless the `failpoints` feature is on).
//!
//! Sites: `store::write` (a segment write), `store::ack_write` (an ack-file write),
//! `store::create` (a new segment file), `store::fsync`. A site configured with
//! `return(enospc)` or `return(eio)` fails with that error; `return(partial)` (writes only)
//! writes half of the buffer first, then fails with ENOSPC, as a filling disk does.

use std::fs::File;
use std::io::{self, Write};

/// Fails if a failure is injected at `site`.
#[inline]
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub(crate) fn inject(site: &str) -> io::Result<()> {
    fail::fail_point!(site, |arg| Err(injected_error(arg.as_deref())));
    Ok(())
}

/// `file.write_all(buf)`, with a failure injected at `site` if one is configured.
#[inline]
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables, unused_mut))]
pub(crate) fn write_all(site: &str, mut file: &File, buf: &[u8]) -> io::Result<()> {
    fail::fail_point!(site, |arg| {
        if arg.as_deref() == Some("partial") {
            file.write_all(&buf[..buf.len() / 2])?;
        }
        Err(injected_error(arg.as_deref()))
    });
    file.write_all(buf)
}

#[allow(dead_code)] // used only with the `failpoints` feature
fn injected_error(arg: Option<&str>) -> io::Error {
    let code = match arg {
        Some("eio") => 5, // EIO
        _ => 28,          // ENOSPC
    };
    io::Error::from_raw_os_error(code)
}
