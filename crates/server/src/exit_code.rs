//! The exit statuses of `warren ctl`, `warren publish` and `warren consume`, one meaning each,
//! so scripts can tell a refusal from a broker that is down (docs/cli.md lists them).

/// Done.
pub const OK: i32 = 0;
/// Refused or failed: the broker said no (HTTP 400, an AMQP channel error other than 403/404),
/// or something on this side failed (an unreadable file, a broken pipe is not one).
pub const FAILED: i32 = 1;
/// The broker could not be reached (refused, timed out, connection lost), or the data
/// directory could not be opened.
pub const UNREACHABLE: i32 = 2;
/// Not authorised: HTTP 401, AMQP 403 (wrong credentials, or a user without the tag or
/// permission the command takes).
pub const NOT_AUTHORISED: i32 = 3;
/// Not found: HTTP 404, AMQP 404 (no such queue, exchange, user, vhost or connection).
pub const NOT_FOUND: i32 = 4;
/// The command line is wrong (sysexits' EX_USAGE, as rabbitmqctl uses it).
pub const USAGE: i32 = 64;
