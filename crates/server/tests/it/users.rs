//! Who may log in: the user and vhost a first start creates (`default_user`, `default_pass`,
//! `default_vhost`) and `loopback_users`, as RabbitMQ names them.

use crate::common::durable::{DurableBroker, Stop};
use crate::common::*;

#[tokio::test]
async fn a_first_start_creates_the_configured_user_and_vhost() {
    let mut broker = DurableBroker::start(&[
        "--default-user",
        "admin",
        "--default-pass",
        "s3cret",
        "--default-vhost",
        "prod",
    ])
    .await;
    let url = |user: &str, pass: &str, vhost: &str| format!("amqp://{user}:{pass}@{}/{vhost}", broker.addr());
    let admin = Client::connect(&url("admin", "s3cret", "prod")).await;
    let ch = admin.channel().await;
    declare_queue(&ch, "q").await;
    let guest = lapin::Connection::connect(&url("guest", "guest", "prod"), Default::default()).await;
    let Err(refused) = guest else { panic!("guest does not exist here") };
    assert_eq!(amqp_error(&refused).map(|(code, _)| code), Some(403), "{refused:?}");
    drop(admin);

    // The defaults only apply to an empty data directory: a restart with others changes nothing.
    broker.set_args(&["--default-user", "other", "--default-pass", "x"]);
    broker.restart(Stop::Term).await;
    let url = |user: &str, pass: &str, vhost: &str| format!("amqp://{user}:{pass}@{}/{vhost}", broker.addr());
    Client::connect(&url("admin", "s3cret", "prod")).await;
    let other = lapin::Connection::connect(&url("other", "x", "prod"), Default::default()).await;
    assert!(other.is_err(), "no user is created on a later start");
}
