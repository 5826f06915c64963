//! Warren's management surfaces over HTTP, protocol-neutral like the core they read: RabbitMQ's
//! management API and the web dashboard (port 15672), and Prometheus metrics (port 15692).
//! The server binary binds the listeners and hands each accepted connection to the routers
//! built here.

#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod dashboard;
pub mod metrics;
