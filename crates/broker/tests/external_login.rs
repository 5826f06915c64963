//! `Broker::authenticate_external` (SASL EXTERNAL): the certificate names the user, so only the
//! user's existence, its loopback restriction and the failed-login limit are checked.

use std::time::Instant;

use warren_broker::{AdminCommand, AuthFailure, Broker, Now, RefusedLogin, User};

#[test]
fn an_existing_user_logs_in_without_a_password() {
    let broker = Broker::new();
    let now = Instant::now();
    broker.admin(AdminCommand::AddUser(User::new("app", "secret")), Now::new(now, 0)).unwrap();
    let afar = Some("10.0.0.1".parse().unwrap());
    assert_eq!(broker.authenticate_external("app", afar, now), Ok(()));
    assert_eq!(broker.authenticate_external("nobody", afar, now), Err(AuthFailure::UnknownUser));
}

#[test]
fn a_loopback_only_user_is_refused_from_afar() {
    let broker = Broker::new();
    let now = Instant::now();
    let local = Some("127.0.0.1".parse().unwrap());
    let afar = Some("10.0.0.1".parse().unwrap());
    assert_eq!(broker.authenticate_external("guest", local, now), Ok(()));
    assert_eq!(broker.authenticate_external("guest", afar, now), Err(AuthFailure::NotFromLoopback));
}

#[test]
fn an_address_over_the_failed_login_limit_is_refused_unchecked() {
    let broker = Broker::new();
    let now = Instant::now();
    let peer = Some("10.0.0.1".parse().unwrap());
    broker.set_loopback_users(&[]);
    broker.set_max_failed_logins_per_minute(Some(1));
    let reason = AuthFailure::UnknownUser;
    broker.login_refused(RefusedLogin { username: "nobody", mechanism: "EXTERNAL", peer, reason }, now);
    assert_eq!(broker.authenticate_external("guest", peer, now), Err(AuthFailure::TooManyFailures));
}
