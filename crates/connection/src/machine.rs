//! The connection state machine: protocol header, start/tune/open handshake, heartbeats,
//! channel lifecycle, content assembly and protocol errors. Bytes and time go in; frames to
//! send and [`Event`]s for the broker come out. No sockets, no clocks of its own. It logs what
//! an operator wants to know (through `tracing`: the caller's span says which connection).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::channel_map::ChannelMap;
use bytes::{Bytes, BytesMut};
use warren_protocol::frame::{self, ContentHeader, Frame, PROTOCOL_HEADER};
use warren_protocol::methods::*;
use warren_protocol::{FieldTable, FieldValue, FrameError, Method, ShortStr};

use crate::close::{CloseReason, LoginRefused};
use crate::config::{ConnectionConfig, FRAME_MIN_SIZE};
use crate::error::*;

/// What the connection needs from the broker during the handshake.
pub trait Host {
    /// Whether the credentials name a user who may connect from this peer, at `now`; the
    /// refusal's reason goes to the log only.
    fn authenticate(&mut self, username: &str, password: &str, now: Instant) -> Result<(), LoginRefused>;
    /// SASL EXTERNAL: whether the user named by the client's verified TLS certificate may
    /// connect from this peer, at `now`. No password: the certificate is the credential.
    fn authenticate_external(&mut self, username: &str, now: Instant) -> Result<(), LoginRefused>;
    /// A login was refused, by [`Host::authenticate`] or because the credentials could not be
    /// read. The host logs it; this one logs every refusal, a broker may limit how many.
    fn login_refused(&mut self, username: &str, mechanism: &str, reason: LoginRefused, now: Instant) {
        let _ = now;
        tracing::warn!(user = username, mechanism, reason = reason.to_string(), "login refused");
    }
    /// Checks that the vhost exists and the user may use it.
    fn open_vhost(&mut self, username: &str, vhost: &str) -> Result<(), AmqpError>;
    /// Checks that the user may open one more channel (RabbitMQ's per-user `max-channels`);
    /// a refusal closes the connection. The channel is the host's to count from
    /// [`Event::ChannelOpened`] until [`Event::ChannelClosed`].
    fn open_channel(&mut self) -> Result<(), AmqpError> {
        Ok(())
    }
}

/// What happened on the connection that the broker acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The connection reached the open state on this vhost.
    Opened {
        /// The vhost the client opened.
        vhost: String,
        /// The authenticated user.
        username: String,
        /// The SASL mechanism the user logged in with (`PLAIN`, `AMQPLAIN`, `EXTERNAL`).
        auth_mechanism: String,
        /// The client-properties of connection.start-ok (product, version, capabilities).
        client_properties: FieldTable,
    },
    /// A channel was opened (its number); channel.open-ok is already written.
    ChannelOpened(u16),
    /// A channel-level method for the broker (anything but connection and channel lifecycle).
    Method {
        /// The channel it came on.
        channel: u16,
        /// The method.
        method: Method,
    },
    /// A publish with its complete content.
    Publish {
        /// The channel it came on.
        channel: u16,
        /// The basic.publish method (exchange, routing key, mandatory).
        publish: BasicPublish,
        /// The content header (body size, properties).
        header: ContentHeader,
        /// The whole body.
        body: Bytes,
    },
    /// The channel is gone (closed by either side); release what it held.
    ChannelClosed(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHeader,
    AwaitingStartOk,
    AwaitingTuneOk,
    AwaitingOpen,
    Open,
    /// We sent connection.close and wait for close-ok.
    Closing,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelPhase {
    Open,
    /// We sent channel.close; everything but close and close-ok is dropped until close-ok.
    Closing,
}

struct Channel {
    phase: ChannelPhase,
    content: Option<PendingContent>,
}

struct PendingContent {
    /// basic.publish, or a content-bearing method a client has no business sending (its content
    /// is read like RabbitMQ does before the method is refused).
    method: Method,
    /// The body outgrew its announced size: RabbitMQ then keeps waiting for a body frame.
    overflowed: bool,
    header: Option<ContentHeader>,
    body: Body,
}

/// A body kept as the single frame it arrived in (zero copy), or gathered from several.
enum Body {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(b) => b.len(),
            Body::Many(b) => b.len(),
        }
    }

    fn push(&mut self, payload: Bytes) {
        *self = match std::mem::replace(self, Body::Empty) {
            Body::Empty => Body::One(payload),
            Body::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + payload.len());
                all.extend_from_slice(&first);
                all.extend_from_slice(&payload);
                Body::Many(all)
            }
            Body::Many(mut all) => {
                all.extend_from_slice(&payload);
                Body::Many(all)
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        }
    }
}

/// One AMQP connection, server side.
pub struct Connection {
    config: ConnectionConfig,
    phase: Phase,
    channel_max: u16,
    frame_max: u32,
    heartbeat: Duration,
    username: String,
    /// The SASL mechanism of the login, once it succeeded.
    auth_mechanism: String,
    vhost: String,
    /// Channels by number. A map, so that a client opening channel 65535 costs one entry, not
    /// 65536 slots; Fx hashing keeps the lookup each frame makes cheap.
    channels: ChannelMap<Channel>,
    out: BytesMut,
    events: VecDeque<Event>,
    last_received: Instant,
    /// The handshake must reach connection.open by then, or the socket is dropped.
    handshake_deadline: Option<Instant>,
    next_heartbeat: Option<Instant>,
    close_deadline: Option<Instant>,
    /// Set when the peer may be told why it was refused (authentication_failure_close).
    client_auth_failure_close: bool,
    client_properties: FieldTable,
    peer_closed: bool,
    sent_close_ok: bool,
    received_anything: bool,
    /// The server holds off reading (flow control, a resource alarm): the peer's silence is
    /// ours, so missed heartbeats are not counted meanwhile.
    reading_held: bool,
    /// The first reason the connection started to end for.
    close_reason: Option<CloseReason>,
    /// The user named by the client's verified TLS certificate: EXTERNAL is offered.
    certificate_login: Option<String>,
}

/// The largest message size RabbitMQ (and Warren) can be configured to accept: 512 MiB.
pub const MAX_MESSAGE_SIZE_CEILING: u64 = 512 * 1024 * 1024;

/// RabbitMQ's text for a content frame that no method announced.
const EXPECTED_METHOD: &str = "expected method frame, got non method frame instead";

/// How long we wait for connection.close-ok before dropping the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

impl Connection {
    /// A connection accepted at `now`, waiting for the protocol header.
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        Connection {
            channel_max: config.channel_max,
            frame_max: config.frame_max,
            phase: Phase::AwaitingHeader,
            heartbeat: Duration::ZERO,
            username: String::new(),
            auth_mechanism: String::new(),
            vhost: String::new(),
            channels: ChannelMap::default(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            last_received: now,
            handshake_deadline: (!config.handshake_timeout.is_zero()).then(|| now + config.handshake_timeout),
            next_heartbeat: None,
            close_deadline: None,
            client_auth_failure_close: false,
            client_properties: FieldTable::new(),
            peer_closed: false,
            sent_close_ok: false,
            received_anything: false,
            reading_held: false,
            close_reason: None,
            certificate_login: None,
            config,
        }
    }

    /// The client presented a verified TLS certificate naming `username`: connection.start
    /// offers the EXTERNAL mechanism, which logs in as that user without a password (RabbitMQ's
    /// rabbitmq_auth_mechanism_ssl). Call before the first input.
    pub fn offer_external(&mut self, username: String) {
        self.certificate_login = Some(username);
    }

    /// Negotiated largest frame size (envelope included).
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// Negotiated largest number of open channels.
    pub fn channel_max(&self) -> u16 {
        self.channel_max
    }

    /// Negotiated heartbeat interval (zero: no heartbeats).
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// The user named at login (empty before connection.start-ok).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The configuration the connection was made with.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// True once the socket should be flushed and shut down.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Why the connection ended (or is ending), once it is.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_ref()
    }

    /// True while the connection is open for channel traffic.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// The buffer replies are written to, for callers that encode frames themselves.
    pub fn out(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Frames waiting to be written, in order.
    pub fn take_output(&mut self) -> BytesMut {
        self.out.split()
    }

    /// Whether frames wait to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether events wait to be polled.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The oldest event not yet handled.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether a channel is open and not being closed (deliveries to it are allowed).
    pub fn channel_is_open(&self, channel: u16) -> bool {
        matches!(self.channels.get(&channel), Some(Channel { phase: ChannelPhase::Open, .. }))
    }

    /// Consumes whole frames at the front of `input`, stopping as soon as one produced an
    /// [`Event`]: the caller handles events before more input, so replies keep their order.
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant, host: &mut dyn Host) {
        if input.is_empty() {
            return;
        }
        self.last_received = now;
        if !self.received_anything {
            self.received_anything = true;
            // As RabbitMQ, only once data comes: TCP health checks would fill the log.
            tracing::info!("accepting AMQP connection");
        }
        if self.phase == Phase::AwaitingHeader && !self.handle_protocol_header(input) {
            return;
        }
        while !matches!(self.phase, Phase::Closed) && self.events.is_empty() {
            // Before tune-ok the client has agreed to nothing: hold it to the minimum frame size.
            let limit = if matches!(self.phase, Phase::AwaitingStartOk | Phase::AwaitingTuneOk) {
                self.config.frame_max.max(FRAME_MIN_SIZE)
            } else {
                self.frame_max
            };
            match frame::parse_frame(input, limit) {
                Ok(Some(frame)) => self.handle_frame(frame, now, host),
                Ok(None) => break,
                Err(error) => {
                    input.clear();
                    self.frame_error(error);
                    break;
                }
            }
        }
        // What follows a close is dropped, but only once looked at: with events pending (e.g.
        // channels released by a close), the frames wait for the next call, and a close-ok among
        // them still counts.
        if matches!(self.phase, Phase::Closing | Phase::Closed) && self.events.is_empty() {
            input.clear();
        }
    }

    /// The peer closed its side of the socket.
    pub fn handle_eof(&mut self) {
        self.peer_closed = true;
        self.release_all_channels();
        let reason = if self.received_anything { CloseReason::Eof } else { CloseReason::NothingReceived };
        self.finish(reason);
    }

    /// Records why the connection is ending; the first reason stands.
    fn note_close(&mut self, reason: CloseReason) {
        if self.close_reason.is_none() {
            self.close_reason = Some(reason);
        }
    }

    /// The connection is over: the socket is to be closed. Logs why, once.
    fn finish(&mut self, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.note_close(reason);
        self.phase = Phase::Closed;
        let Some(reason) = &self.close_reason else { return };
        let (user, vhost) = (self.username.as_str(), self.vhost.as_str());
        match reason {
            // A refused login was logged as such (as often as the host allows: a flood of them
            // must not write two lines each).
            CloseReason::NothingReceived | CloseReason::LoginRefused(_) => {
                tracing::debug!(user, reason = reason.to_string(), "closing AMQP connection")
            }
            r if r.is_abnormal() => {
                tracing::warn!(user, vhost, reason = r.to_string(), "closing AMQP connection")
            }
            r => tracing::info!(user, vhost, reason = r.to_string(), "closing AMQP connection"),
        }
    }

    /// Whether the socket should stay open until the client closes it: after our close-ok, as
    /// RabbitMQ does, so the client reads the close-ok before the end of the stream.
    pub fn linger_before_close(&self) -> bool {
        self.sent_close_ok && !self.peer_closed
    }

    fn send_close_ok(&mut self) {
        frame::write_method(&mut self.out, 0, &ConnectionCloseOk {}.into());
        self.sent_close_ok = true;
    }

    /// Whether the server holds off reading the socket (flow control or a resource alarm):
    /// as RabbitMQ's heartbeat monitor pauses for a blocked connection, missed heartbeats are
    /// not counted meanwhile, and the silence is counted afresh from when reading resumes.
    pub fn hold_reading(&mut self, held: bool, now: Instant) {
        if self.reading_held && !held {
            self.last_received = self.last_received.max(now);
        }
        self.reading_held = held;
    }

    /// When [`Connection::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let silence = (!self.heartbeat.is_zero() && !self.reading_held)
            .then(|| self.last_received + self.heartbeat * 2);
        let handshake = self.handshake_deadline.filter(|_| self.in_handshake());
        [self.next_heartbeat, silence, self.close_deadline, handshake].into_iter().flatten().min()
    }

    fn in_handshake(&self) -> bool {
        matches!(
            self.phase,
            Phase::AwaitingHeader | Phase::AwaitingStartOk | Phase::AwaitingTuneOk | Phase::AwaitingOpen
        )
    }

    /// Sends due heartbeats, drops a peer silent for two heartbeat intervals, ends a stalled close
    /// or handshake.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.in_handshake() && self.handshake_deadline.is_some_and(|deadline| now >= deadline) {
            // As RabbitMQ: nothing is sent, the socket is closed.
            return self.finish(CloseReason::HandshakeTimeout(self.config.handshake_timeout));
        }
        if let Some(deadline) = self.close_deadline {
            if now >= deadline {
                tracing::debug!("no connection.close-ok in time");
                // The reason the close was sent for stands.
                return self.finish(CloseReason::Eof);
            }
        }
        if self.heartbeat.is_zero() {
            return;
        }
        if !self.reading_held && now >= self.last_received + self.heartbeat * 2 {
            // RabbitMQ drops the socket without a close frame: the peer is not listening anyway.
            return self.finish(CloseReason::MissedHeartbeats(self.heartbeat));
        }
        if let Some(due) = self.next_heartbeat {
            if now >= due {
                frame::write_heartbeat(&mut self.out);
                self.next_heartbeat = Some(now + self.heartbeat_send_interval());
            }
        }
    }

    fn heartbeat_send_interval(&self) -> Duration {
        (self.heartbeat / 2).max(Duration::from_secs(1))
    }

    /// Sends a method on a channel (replies and server-initiated methods from the broker).
    pub fn send_method(&mut self, channel: u16, method: &Method) {
        frame::write_method(&mut self.out, channel, method);
    }

    /// Closes a channel with a soft error, or the connection with a hard one.
    pub fn fail(&mut self, channel: u16, error: AmqpError) {
        if error.is_hard() || channel == 0 {
            self.close_connection(error);
        } else {
            self.close_channel(channel, error);
        }
    }

    /// Server-initiated channel.close; the channel's resources are released at once.
    pub fn close_channel(&mut self, channel: u16, error: AmqpError) {
        let Some(slot) = self.channels.get_mut(&channel) else {
            return;
        };
        if slot.phase == ChannelPhase::Closing {
            return;
        }
        slot.phase = ChannelPhase::Closing;
        slot.content = None;
        tracing::warn!(channel, code = error.code, text = error.reply_text(), "channel error");
        let close = ChannelClose {
            reply_code: error.code,
            reply_text: ShortStr::from(error.reply_text()),
            class_id: error.class_id,
            method_id: error.method_id,
        };
        frame::write_method(&mut self.out, channel, &Method::ChannelClose(close));
        self.events.push_back(Event::ChannelClosed(channel));
    }

    /// Server-initiated connection.close for an error.
    pub fn close_connection(&mut self, error: AmqpError) {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        let (class_id, method_id) = (error.class_id, error.method_id);
        tracing::warn!(code = error.code, text = error.reply_text(), class_id, method_id, "connection error");
        self.send_close(error);
    }

    /// Sends connection.close and waits for close-ok.
    fn send_close(&mut self, error: AmqpError) {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        if matches!(self.phase, Phase::AwaitingHeader) {
            return self.finish(CloseReason::Error(error));
        }
        let close = ConnectionClose {
            reply_code: error.code,
            reply_text: ShortStr::from(error.reply_text()),
            class_id: error.class_id,
            method_id: error.method_id,
        };
        frame::write_method(&mut self.out, 0, &Method::ConnectionClose(close));
        self.release_all_channels();
        self.note_close(CloseReason::Error(error));
        self.phase = Phase::Closing;
        self.close_deadline = Some(self.last_received + CLOSE_TIMEOUT);
    }

    /// Closes the connection for a reason outside the protocol (the broker shutting down): an
    /// open connection is sent connection.close and has `CLOSE_TIMEOUT` (3 s) from `now` to
    /// answer; one still in its handshake is dropped without a word, as RabbitMQ does.
    pub fn force_close(&mut self, error: AmqpError, now: Instant) {
        match self.phase {
            Phase::Open => {
                self.send_close(error);
                self.close_deadline = Some(now + CLOSE_TIMEOUT);
            }
            Phase::Closing | Phase::Closed => {}
            Phase::AwaitingHeader | Phase::AwaitingStartOk | Phase::AwaitingTuneOk | Phase::AwaitingOpen => {
                self.release_all_channels();
                self.finish(CloseReason::Error(error));
            }
        }
    }

    /// Tells clients that advertise it that publishing is blocked (e.g. low disk).
    pub fn send_blocked(&mut self, reason: &str) {
        let m = ConnectionBlocked { reason: ShortStr::from(reason) };
        frame::write_method(&mut self.out, 0, &Method::ConnectionBlocked(m));
    }

    /// Tells the client publishing may resume.
    pub fn send_unblocked(&mut self) {
        frame::write_method(&mut self.out, 0, &Method::ConnectionUnblocked(ConnectionUnblocked {}));
    }

    fn release_all_channels(&mut self) {
        let mut open: Vec<u16> = self
            .channels
            .drain()
            .filter(|(_, ch)| ch.phase == ChannelPhase::Open)
            .map(|(id, _)| id)
            .collect();
        // In channel order, as they were released when channels lived in a Vec.
        open.sort_unstable();
        self.events.extend(open.into_iter().map(Event::ChannelClosed));
    }

    /// Returns true when the header was accepted and frames may follow.
    fn handle_protocol_header(&mut self, input: &mut BytesMut) -> bool {
        let n = input.len().min(PROTOCOL_HEADER.len());
        if input[..n] != PROTOCOL_HEADER[..n] {
            // The spec: answer with the header we support, then close.
            self.out.extend_from_slice(PROTOCOL_HEADER);
            self.finish(CloseReason::BadHeader);
            input.clear();
            return false;
        }
        if n < PROTOCOL_HEADER.len() {
            return false;
        }
        let _ = input.split_to(PROTOCOL_HEADER.len());
        let start = ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: self.config.server_properties.clone(),
            // PLAIN stays first: some clients take the server's first mechanism they know.
            mechanisms: if self.certificate_login.is_some() {
                Bytes::from_static(b"PLAIN AMQPLAIN EXTERNAL")
            } else {
                Bytes::from_static(b"PLAIN AMQPLAIN")
            },
            locales: Bytes::from_static(b"en_US"),
        };
        frame::write_method(&mut self.out, 0, &Method::ConnectionStart(start));
        self.phase = Phase::AwaitingStartOk;
        true
    }

    fn frame_error(&mut self, error: FrameError) {
        self.close_connection(crate::erlang::frame_error(&error));
    }

    fn handle_frame(&mut self, frame: Frame, now: Instant, host: &mut dyn Host) {
        match self.phase {
            Phase::AwaitingHeader | Phase::Closed => {}
            Phase::Closing => self.handle_frame_while_closing(frame),
            Phase::AwaitingStartOk | Phase::AwaitingTuneOk | Phase::AwaitingOpen => {
                self.handle_handshake_frame(frame, now, host)
            }
            Phase::Open => self.handle_open_frame(frame, host),
        }
    }

    fn handle_frame_while_closing(&mut self, frame: Frame) {
        if let Frame::Method { channel: 0, method } = frame {
            match method {
                Method::ConnectionCloseOk(_) => self.finish(CloseReason::ClientClosed),
                Method::ConnectionClose(_) => {
                    self.send_close_ok();
                    self.finish(CloseReason::ClientClosed);
                }
                _ => {}
            }
        }
    }

    fn handle_handshake_frame(&mut self, frame: Frame, now: Instant, host: &mut dyn Host) {
        let method = match frame {
            Frame::Method { channel: 0, method } => method,
            Frame::Heartbeat { channel: 0 } => return,
            _ => {
                let text = "expected a connection method on channel 0 during the handshake";
                return self.close_connection(AmqpError::unexpected_frame(text));
            }
        };
        match (self.phase, method) {
            (Phase::AwaitingStartOk, Method::ConnectionStartOk(m)) => self.handle_start_ok(m, now, host),
            (Phase::AwaitingTuneOk, Method::ConnectionTuneOk(m)) => self.handle_tune_ok(m),
            (Phase::AwaitingOpen, Method::ConnectionOpen(m)) => self.handle_open(m, host),
            (_, Method::ConnectionClose(_)) => {
                self.send_close_ok();
                self.finish(CloseReason::ClientClosed);
            }
            (_, other) => {
                let text = format!("unexpected method '{}' during the handshake", other.name());
                self.close_connection(AmqpError::command_invalid(text).during(&other));
            }
        }
    }

    fn handle_start_ok(&mut self, m: ConnectionStartOk, now: Instant, host: &mut dyn Host) {
        self.client_auth_failure_close =
            client_capability(&m.client_properties, "authentication_failure_close");
        let credentials = match &*m.mechanism {
            "PLAIN" => parse_plain(&m.response).map(Credentials::password),
            "AMQPLAIN" => parse_amqplain(&m.response).map(Credentials::password),
            // The response (an authorization identity, if any) is ignored, as RabbitMQ does:
            // the certificate alone names the user.
            "EXTERNAL" if self.certificate_login.is_some() => {
                self.certificate_login.clone().map(Credentials::Certificate)
            }
            other => {
                let text = format!("unknown authentication mechanism '{other}'");
                return self.close_connection(AmqpError::command_invalid(text).at(10, 11));
            }
        };
        let checked = match &credentials {
            Some(Credentials::Password { username, password }) => host.authenticate(username, password, now),
            Some(Credentials::Certificate(username)) => host.authenticate_external(username, now),
            None => Err(LoginRefused::Malformed),
        };
        if let Err(refused) = checked {
            // Named in the log lines that follow, though it never got in.
            self.username = credentials.map(Credentials::into_username).unwrap_or_default();
            host.login_refused(&self.username, &m.mechanism, refused, now);
            self.note_close(CloseReason::LoginRefused(refused));
            let text = format!(
                "Login was refused using authentication mechanism {}. For details see the broker logfile.",
                &*m.mechanism
            );
            if self.client_auth_failure_close {
                self.send_close(AmqpError::access_refused(text));
            } else {
                self.finish(CloseReason::LoginRefused(refused));
            }
            return;
        }
        self.username = credentials.map(Credentials::into_username).unwrap_or_default();
        self.auth_mechanism = m.mechanism.to_string();
        self.client_properties = m.client_properties;
        let tune = ConnectionTune {
            channel_max: self.config.channel_max,
            frame_max: self.config.frame_max,
            heartbeat: self.config.heartbeat,
        };
        frame::write_method(&mut self.out, 0, &Method::ConnectionTune(tune));
        self.phase = Phase::AwaitingTuneOk;
    }

    fn handle_tune_ok(&mut self, m: ConnectionTuneOk) {
        let checks = [
            (
                "frame_max",
                u64::from(FRAME_MIN_SIZE),
                u64::from(m.frame_max),
                u64::from(self.config.frame_max),
            ),
            ("channel_max", 1, u64::from(m.channel_max), u64::from(self.config.channel_max)),
        ];
        for (field, min, client, server) in checks {
            if let Some(error) = negotiation_error(field, min, client, server) {
                return self.close_connection(error.during(&Method::ConnectionTuneOk(m)));
            }
        }
        self.frame_max = m.frame_max;
        self.channel_max = m.channel_max;
        self.heartbeat = Duration::from_secs(u64::from(m.heartbeat));
        self.phase = Phase::AwaitingOpen;
    }

    fn handle_open(&mut self, m: ConnectionOpen, host: &mut dyn Host) {
        let vhost = m.virtual_host.to_string();
        if let Err(error) = host.open_vhost(&self.username, &vhost) {
            return self.close_connection(error.during(&Method::ConnectionOpen(m)));
        }
        let ok = ConnectionOpenOk { known_hosts: ShortStr::from_static("") };
        frame::write_method(&mut self.out, 0, &Method::ConnectionOpenOk(ok));
        self.phase = Phase::Open;
        self.handshake_deadline = None;
        tracing::info!(user = self.username, vhost, "user authenticated and granted access to vhost");
        self.vhost.clone_from(&vhost);
        if !self.heartbeat.is_zero() {
            self.next_heartbeat = Some(self.last_received + self.heartbeat_send_interval());
        }
        let client_properties = std::mem::take(&mut self.client_properties);
        self.events.push_back(Event::Opened {
            vhost,
            username: self.username.clone(),
            auth_mechanism: self.auth_mechanism.clone(),
            client_properties,
        });
    }

    fn handle_open_frame(&mut self, frame: Frame, host: &mut dyn Host) {
        match frame {
            Frame::Heartbeat { channel: 0 } => {}
            Frame::Heartbeat { .. } => {
                let text = crate::erlang::frame_snippet(warren_protocol::constants::FRAME_HEARTBEAT, &[]);
                self.close_connection(AmqpError::unexpected_frame(text))
            }
            Frame::Method { channel: 0, method } => self.handle_connection_method(method),
            Frame::Method { channel, method } => self.handle_channel_method(channel, method, host),
            Frame::Header { channel, header } => self.handle_header(channel, header),
            Frame::Body { channel, payload } => self.handle_body(channel, payload),
        }
    }

    fn handle_connection_method(&mut self, method: Method) {
        match method {
            Method::ConnectionClose(_) => {
                self.send_close_ok();
                self.release_all_channels();
                self.finish(CloseReason::ClientClosed);
            }
            Method::ConnectionCloseOk(_) => self.finish(CloseReason::ClientClosed),
            Method::ConnectionUpdateSecret(_) => {
                frame::write_method(&mut self.out, 0, &ConnectionUpdateSecretOk {}.into());
            }
            Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_) => {}
            other => {
                let text = "unexpected method in connection state running";
                self.close_connection(AmqpError::channel_error(text).during(&other));
            }
        }
    }

    fn channel_slot(&mut self, channel: u16) -> Option<&mut Channel> {
        self.channels.get_mut(&channel)
    }

    fn handle_channel_method(&mut self, channel: u16, method: Method, host: &mut dyn Host) {
        if let Method::ChannelOpen(_) = method {
            return self.open_channel(channel, &method, host);
        }
        let Some(slot) = self.channel_slot(channel) else {
            return self
                .close_connection(AmqpError::channel_error("expected 'channel.open'").during(&method));
        };
        if slot.phase == ChannelPhase::Closing {
            match method {
                Method::ChannelCloseOk(_) => self.free_channel(channel),
                Method::ChannelClose(_) => {
                    frame::write_method(&mut self.out, channel, &ChannelCloseOk {}.into());
                }
                _ => {}
            }
            return;
        }
        if let Some(pending) = &slot.content {
            let text = if pending.header.is_none() {
                "expected content header for class 60, got non content header frame instead"
            } else {
                "expected content body, got non content body frame instead"
            };
            let error = AmqpError::unexpected_frame(text).during(&pending.method);
            return self.close_connection(error);
        }
        match method {
            Method::ChannelClose(_) => {
                frame::write_method(&mut self.out, channel, &ChannelCloseOk {}.into());
                self.free_channel(channel);
                self.events.push_back(Event::ChannelClosed(channel));
            }
            // As RabbitMQ: clients use prefetch and TCP backpressure; pausing a channel is refused.
            Method::ChannelFlow(ChannelFlow { active: true }) => {
                let ok = ChannelFlowOk { active: true };
                frame::write_method(&mut self.out, channel, &Method::ChannelFlowOk(ok));
            }
            Method::ChannelFlow(m) => {
                let error = AmqpError::not_implemented("active=false").during(&Method::ChannelFlow(m));
                self.close_connection(error);
            }
            content if content.has_content() => {
                slot.content = Some(PendingContent {
                    method: content,
                    overflowed: false,
                    header: None,
                    body: Body::Empty,
                });
            }
            // Connection methods on a channel, and replies nobody asked for.
            other if other.class_id() == 10 || is_unsolicited_reply(&other) => {
                let error = AmqpError::command_invalid("unimplemented method").during(&other);
                self.close_connection(error);
            }
            other => self.events.push_back(Event::Method { channel, method: other }),
        }
    }

    fn open_channel(&mut self, channel: u16, method: &Method, host: &mut dyn Host) {
        // As RabbitMQ: channel_max limits how many channels are open, not their numbers.
        let open = self.channels.len();
        if open >= usize::from(self.channel_max) && !self.channels.contains_key(&channel) {
            let text = format!(
                "number of channels opened ({open}) has reached the negotiated channel_max ({})",
                self.channel_max
            );
            return self.close_connection(AmqpError::not_allowed(text));
        }
        if self.channels.contains_key(&channel) {
            let text = "second 'channel.open' seen";
            return self.close_connection(AmqpError::channel_error(text).during(method));
        }
        if let Err(error) = host.open_channel() {
            return self.close_connection(error);
        }
        self.channels.insert(channel, Channel { phase: ChannelPhase::Open, content: None });
        let ok = ChannelOpenOk { channel_id: Bytes::new() };
        frame::write_method(&mut self.out, channel, &Method::ChannelOpenOk(ok));
        self.events.push_back(Event::ChannelOpened(channel));
    }

    fn free_channel(&mut self, channel: u16) {
        self.channels.remove(&channel);
    }

    fn handle_header(&mut self, channel: u16, header: ContentHeader) {
        let max_message_size = self.config.max_message_size;
        let Some(slot) = self.channel_slot(channel) else {
            return self.close_connection(AmqpError::unexpected_frame(EXPECTED_METHOD));
        };
        if slot.phase == ChannelPhase::Closing {
            return;
        }
        let Some(pending) = slot.content.as_mut() else {
            return self.close_connection(AmqpError::unexpected_frame(EXPECTED_METHOD));
        };
        if pending.header.is_some() {
            let text = "expected content body, got non content body frame instead";
            let error = AmqpError::unexpected_frame(text).during(&pending.method);
            return self.close_connection(error);
        }
        if header.class_id != 60 {
            let text = format!(
                "expected content header for class 60, got one for class {} instead",
                header.class_id
            );
            let error = AmqpError::unexpected_frame(text).during(&pending.method);
            return self.close_connection(error);
        }
        if header.body_size > max_message_size {
            // RabbitMQ words it differently at its hard ceiling.
            let which =
                if max_message_size >= MAX_MESSAGE_SIZE_CEILING { "max size" } else { "configured max size" };
            let text = format!("message size {} is larger than {which} {max_message_size}", header.body_size);
            slot.content = None;
            let error = AmqpError::precondition_failed(text).during(&BasicPublish::default().into());
            return self.close_channel(channel, error);
        }
        let complete = header.body_size == 0;
        pending.header = Some(header);
        if complete {
            self.finish_content(channel);
        }
    }

    fn handle_body(&mut self, channel: u16, payload: Bytes) {
        let Some(slot) = self.channel_slot(channel) else {
            return self.close_connection(AmqpError::unexpected_frame(EXPECTED_METHOD));
        };
        if slot.phase == ChannelPhase::Closing {
            return;
        }
        let Some(pending) = slot.content.as_mut() else {
            return self.close_connection(AmqpError::unexpected_frame(EXPECTED_METHOD));
        };
        let Some(header) = &pending.header else {
            let text = "expected content header for class 60, got non content header frame instead";
            let error = AmqpError::unexpected_frame(text).during(&pending.method);
            return self.close_connection(error);
        };
        let expected = header.body_size;
        let received = pending.body.len() as u64 + payload.len() as u64;
        if received > expected || pending.overflowed {
            // As RabbitMQ: the surplus is not an error by itself; the content simply never
            // completes, and the next method is the unexpected frame.
            pending.overflowed = true;
            return;
        }
        pending.body.push(payload);
        if received == expected {
            self.finish_content(channel);
        }
    }

    fn finish_content(&mut self, channel: u16) {
        let Some(slot) = self.channel_slot(channel) else { return };
        let Some(PendingContent { method, header: Some(header), body, .. }) = slot.content.take() else {
            return;
        };
        match method {
            Method::BasicPublish(publish) => {
                self.events.push_back(Event::Publish { channel, publish, header, body: body.into_bytes() })
            }
            other => {
                let error = AmqpError::command_invalid("unimplemented method").during(&other);
                self.close_connection(error);
            }
        }
    }
}

/// RabbitMQ's rule for tune-ok values: not below the minimum, and, where the server sets a
/// limit, not above it nor 0 ("no limit").
fn negotiation_error(field: &str, min: u64, client: u64, server: u64) -> Option<AmqpError> {
    let (direction, bound, limit) = if client != 0 && client < min {
        ("lower", "minimum", min)
    } else if server != 0 && (client == 0 || client > server) {
        ("higher", "maximum", server)
    } else {
        return None;
    };
    let detail = if field == "channel_max" && client == 0 { " (no limit)" } else { "" };
    let text = format!(
        "negotiated {field} = {client}{detail} is {direction} than the {bound} allowed value ({limit})"
    );
    Some(AmqpError::not_allowed(text))
}

/// Replies to requests only the server makes: a client sending one is confused.
fn is_unsolicited_reply(method: &Method) -> bool {
    matches!(method, Method::ChannelCloseOk(_) | Method::ChannelFlowOk(_))
}

/// Whether the client's properties advertise a capability.
pub fn client_capability(client_properties: &FieldTable, name: &str) -> bool {
    match client_properties.get("capabilities") {
        Some(FieldValue::Table(caps)) => caps.get(name).and_then(FieldValue::as_bool).unwrap_or(false),
        _ => false,
    }
}

/// Who connection.start-ok says the client is, by mechanism.
enum Credentials {
    /// PLAIN or AMQPLAIN.
    Password { username: String, password: String },
    /// EXTERNAL: the user named by the client's certificate.
    Certificate(String),
}

impl Credentials {
    fn password((username, password): (String, String)) -> Self {
        Credentials::Password { username, password }
    }

    fn into_username(self) -> String {
        match self {
            Credentials::Password { username, .. } | Credentials::Certificate(username) => username,
        }
    }
}

/// PLAIN: "\0username\0password" (an authorization identity before the first NUL is ignored).
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((user.to_owned(), pass.to_owned()))
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.
fn parse_amqplain(response: &[u8]) -> Option<(String, String)> {
    let mut framed = BytesMut::with_capacity(response.len() + 4);
    framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
    framed.extend_from_slice(response);
    let table = FieldTable::decode(&mut framed.freeze()).ok()?;
    let user = table.get("LOGIN")?.as_str()?.to_owned();
    let pass = table.get("PASSWORD")?.as_str()?.to_owned();
    Some((user, pass))
}
