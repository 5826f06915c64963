//! `warren publish` and `warren consume`: AMQP from the shell, as amqp-tools' amqp-publish and
//! amqp-consume, on Warren's own codec (see [`client`]).

mod amqp_url;
mod client;
mod consume;
mod progress;
mod publish;

pub use consume::{run as consume, ConsumeArgs};
pub use publish::{run as publish, PublishArgs};
