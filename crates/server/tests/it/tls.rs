//! TLS listeners (amqps) with certificates generated per test (rcgen): lapin and pika over TLS,
//! SASL EXTERNAL with a client certificate, refused client certificates, a plain and a TLS
//! listener at once, the handshake timeout, bad certificate files at startup, and reloading the
//! certificate files on SIGHUP without dropping connections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{Connection, ConnectionProperties};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::common::durable::{wait_port, DurableBroker};
use crate::common::{declare_queue, eventually, free_port, get_body, publish, uniq, within, TIMEOUT};

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// A certificate authority and the files it issued, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM-encoded.
#[derive(Clone)]
struct Issued {
    cert_pem: String,
    key_pem: String,
}

impl Issued {
    fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap().to_vec()
    }
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::Builder::new().prefix("warren-tls-").tempdir().unwrap();
        let pki = Pki { dir, ca };
        std::fs::write(pki.path("ca.pem"), pki.ca_pem()).unwrap();
        pki
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// A server certificate for 127.0.0.1 and localhost.
    fn server(&self) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name = common_name("localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate whose common name is `cn`.
    fn client(&self, cn: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = common_name(cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// Writes `issued` as `<name>.pem` and `<name>.key`.
    fn write(&self, name: &str, issued: &Issued) {
        std::fs::write(self.path(&format!("{name}.pem")), &issued.cert_pem).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), &issued.key_pem).unwrap();
    }

    /// The broker's flags for a TLS listener on `port` serving `server.pem`/`server.key`.
    fn broker_args(&self, port: u16, extra: &[&str]) -> Vec<String> {
        let path = |f: &str| self.path(f).display().to_string();
        let mut args = vec![
            "--tls-listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--tls-certfile".to_owned(),
            path("server.pem"),
            "--tls-keyfile".to_owned(),
            path("server.key"),
            "--tls-cacertfile".to_owned(),
            path("ca.pem"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Verify client certificates and refuse clients without one.
const VERIFY_PEER: [&str; 4] = ["--tls-verify", "verify_peer", "--tls-fail-if-no-peer-cert", "true"];

/// A broker with a plain listener and a TLS one, serving `pki`'s `server.pem`.
struct TlsBroker {
    broker: DurableBroker,
    tls: SocketAddr,
}

impl TlsBroker {
    async fn start(pki: &Pki, extra: &[&str]) -> TlsBroker {
        pki.write("server", &pki.server());
        let port = free_port();
        let args = pki.broker_args(port, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let broker = DurableBroker::start(&args).await;
        let tls: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_port(tls).await;
        TlsBroker { broker, tls }
    }

    fn amqps_url(&self, credentials: &str, query: &str) -> String {
        format!("amqps://{credentials}{}/%2f{query}", self.tls)
    }
}

/// lapin over TLS, trusting `ca_pem`, presenting `client` if given.
async fn lapin_tls(url: &str, ca_pem: &str, client: Option<&Issued>) -> lapin::Result<Connection> {
    let config = OwnedTLSConfig {
        identity: client.map(|c| OwnedIdentity::PKCS8 {
            pem: c.cert_pem.clone().into_bytes(),
            key: c.key_pem.clone().into_bytes(),
        }),
        cert_chain: Some(ca_pem.to_owned()),
    };
    let runtime = lapin::runtime::default_runtime().unwrap();
    within(Connection::connect_with_config(url, ConnectionProperties::default(), config, runtime)).await
}

/// A raw TLS session (rustls), trusting `ca_pem`, presenting `client` if given.
async fn raw_tls(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&Issued>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    within(connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)).await
}

/// The first bytes the broker answers the protocol header with over `stream`: a connection.start
/// frame starts with 1 (method frame) on channel 0. An error or an end of stream means refused.
async fn answer_to_header(stream: &mut TlsStream<TcpStream>) -> std::io::Result<Vec<u8>> {
    stream.write_all(b"AMQP\x00\x00\x09\x01").await?;
    let mut buf = vec![0u8; 7];
    let n = within(stream.read(&mut buf)).await?;
    buf.truncate(n);
    Ok(buf)
}

/// A round trip through a fresh server-named queue on `conn`.
async fn round_trip(conn: &Connection, body: &[u8]) {
    let ch = within(conn.create_channel()).await.expect("channel");
    let q = declare_queue(&ch, &uniq("tls")).await;
    publish(&ch, "", q.name().as_str(), body).await;
    let got = eventually("the message is back", || async { get_body(&ch, q.name().as_str()).await }).await;
    assert_eq!(got, body);
}

fn send_sighup(pid: u32) {
    let sent = Command::new("kill").arg("-HUP").arg(pid.to_string()).status();
    assert!(sent.is_ok_and(|s| s.success()), "could not send SIGHUP to {pid}");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn lapin_over_tls_beside_a_plain_listener() {
    let pki = Pki::new("Warren test CA");
    let b = TlsBroker::start(&pki, &[]).await;
    let secure =
        lapin_tls(&b.amqps_url("guest:guest@", ""), &pki.ca_pem(), None).await.expect("amqps connection");
    // The management API names the TLS listener as RabbitMQ does.
    let api = b.broker.management_addr().await;
    let overview =
        crate::common::http::request(api, "GET", "/api/overview", "guest", "guest", None).await.json();
    let tls_listener = overview["listeners"].as_array().unwrap().iter().find(|l| l["port"] == b.tls.port());
    assert_eq!(
        tls_listener.map(|l| l["protocol"].clone()),
        Some(serde_json::json!("amqp/ssl")),
        "{overview}"
    );
    let check = "/api/health/checks/protocol-listener/amqps";
    assert_eq!(crate::common::http::request(api, "GET", check, "guest", "guest", None).await.status, 200);
    let plain = b.broker.connect().await;
    round_trip(&secure, b"over TLS").await;
    // A large body goes out as shared slices in one vectored write: through TLS too.
    let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    round_trip(&secure, &large).await;
    let ch = plain.channel().await;
    let q = declare_queue(&ch, &uniq("plain")).await;
    publish(&ch, "", q.name().as_str(), b"over TCP").await;
    assert_eq!(
        eventually("plain get", || async { get_body(&ch, q.name().as_str()).await }).await,
        b"over TCP"
    );
    // Both listeners are named in the log, with their protocol.
    let log = b.broker.log();
    assert!(log.contains("protocol=\"amqps\"") || log.contains("protocol=amqps"), "{log}");
    within(secure.close(200, "bye".into())).await.unwrap();
}

#[tokio::test]
async fn the_management_api_is_served_over_https_with_the_tls_certificate() {
    let pki = Pki::new("Warren test CA");
    let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let b = TlsBroker::start(&pki, &["--management-tls-listen", &https.to_string()]).await;
    wait_port(https).await;
    let ask = |auth: &'static str| {
        let ca = pki.ca_pem();
        async move {
            let mut session = raw_tls(https, &ca, None).await.expect("TLS session with the management port");
            let request = format!(
                "GET /api/whoami HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
            );
            session.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            within(session.read_to_end(&mut answer)).await.unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let guest = ask("Z3Vlc3Q6Z3Vlc3Q=").await;
    assert!(guest.starts_with("HTTP/1.1 200"), "{guest}");
    assert!(guest.contains(r#"{"name":"guest","tags":["administrator"]}"#), "{guest}");
    let refused = ask("Z3Vlc3Q6d3Jvbmc=").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    // A client that speaks plain HTTP to the https port gets no API.
    let mut plain = TcpStream::connect(https).await.unwrap();
    plain.write_all(b"GET /api/whoami HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = within(plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("guest"));
    assert!(b.broker.log().contains("management API and dashboard listening (https)"));
}

#[tokio::test]
async fn external_logs_in_as_the_client_certificates_common_name() {
    let pki = Pki::new("Warren test CA");
    let b = TlsBroker::start(&pki, &VERIFY_PEER).await;
    // guest is the broker's default user; a certificate naming it logs in with no password.
    let guest = pki.client("guest");
    let url = b.amqps_url("", "?auth_mechanism=external");
    let conn = lapin_tls(&url, &pki.ca_pem(), Some(&guest)).await.expect("EXTERNAL login as guest");
    round_trip(&conn, b"external").await;

    // A certificate naming no existing user is a refused login, logged as such.
    let nobody = pki.client("nobody");
    let refused = lapin_tls(&url, &pki.ca_pem(), Some(&nobody)).await;
    assert!(refused.is_err(), "an unknown user got in");
    let log = eventually("the refusal is logged", || async {
        let log = b.broker.log();
        log.contains("login refused").then_some(log)
    })
    .await;
    let line = log.lines().find(|l| l.contains("login refused")).unwrap();
    assert!(line.contains("nobody") && line.contains("EXTERNAL") && line.contains("unknown user"), "{line}");

    // PLAIN still works on the same listener, with a client certificate naming someone else.
    let plain = lapin_tls(&b.amqps_url("guest:guest@", ""), &pki.ca_pem(), Some(&nobody)).await;
    round_trip(&plain.expect("PLAIN over TLS"), b"plain").await;
}

#[tokio::test]
async fn untrusted_or_missing_client_certificates_are_refused() {
    let pki = Pki::new("Warren test CA");
    let b = TlsBroker::start(&pki, &VERIFY_PEER).await;
    let stranger = Pki::new("Someone else's CA").client("guest");
    let refused = |result: std::io::Result<Vec<u8>>| match result {
        Ok(bytes) => bytes.is_empty(),
        Err(_) => true,
    };
    for client in [Some(&stranger), None] {
        let answer = match raw_tls(b.tls, &pki.ca_pem(), client).await {
            // TLS 1.3: the client finishes first; the server's refusal arrives as an alert.
            Ok(mut stream) => answer_to_header(&mut stream).await,
            Err(e) => Err(e),
        };
        assert!(
            refused(answer),
            "a client with {} got an answer",
            if client.is_some() { "an untrusted certificate" } else { "no certificate" }
        );
    }
    let url = b.amqps_url("", "?auth_mechanism=external");
    assert!(
        lapin_tls(&url, &pki.ca_pem(), Some(&stranger)).await.is_err(),
        "lapin got in with an untrusted certificate"
    );
    // A trusted certificate gets connection.start.
    let trusted = pki.client("guest");
    let mut stream = raw_tls(b.tls, &pki.ca_pem(), Some(&trusted)).await.expect("trusted handshake");
    let start = answer_to_header(&mut stream).await.expect("connection.start");
    assert_eq!(&start[..3], [1, 0, 0], "a method frame on channel 0");
    let log = b.broker.log();
    assert!(log.contains("TLS handshake failed"), "{log}");
}

#[tokio::test]
async fn pika_over_tls_with_plain_and_external() {
    if !python_has_pika() {
        assert!(std::env::var_os("CI").is_none(), "CI needs python3 with pika (.ci/run installs it)");
        eprintln!("skipped: python3 with pika is not installed");
        return;
    }
    let pki = Pki::new("Warren test CA");
    let b = TlsBroker::start(&pki, &VERIFY_PEER).await;
    pki.write("client", &pki.client("guest"));
    let script = r#"
import ssl, sys
import pika

port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile=ca)
context.load_cert_chain(cert, key)
for credentials in (pika.PlainCredentials("guest", "guest"), pika.credentials.ExternalCredentials()):
    params = pika.ConnectionParameters(
        host="127.0.0.1", port=port, ssl_options=pika.SSLOptions(context, "localhost"),
        credentials=credentials, connection_attempts=1)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"hello " + type(credentials).__name__.encode())
    method, props, body = ch.basic_get(q, auto_ack=True)
    print(body.decode())
    conn.close()
"#;
    let output = Command::new("timeout")
        .arg(TIMEOUT.as_secs().to_string())
        .arg("python3")
        .arg("-c")
        .arg(script)
        .arg(b.tls.port().to_string())
        .arg(pki.path("ca.pem"))
        .arg(pki.path("client.pem"))
        .arg(pki.path("client.key"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pika failed: {}\n{stdout}\n{}\nbroker log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        b.broker.log()
    );
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["hello PlainCredentials", "hello ExternalCredentials"]);
}

fn python_has_pika() -> bool {
    Command::new("python3").args(["-c", "import pika"]).output().is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn sighup_reloads_the_certificate_files_without_dropping_connections() {
    let pki = Pki::new("Warren test CA");
    let b = TlsBroker::start(&pki, &[]).await;
    let ca = pki.ca_pem();
    let served = || async {
        let stream = raw_tls(b.tls, &ca, None).await.expect("handshake");
        stream.get_ref().1.peer_certificates().expect("a server certificate")[0].to_vec()
    };
    let old = lapin_tls(&b.amqps_url("guest:guest@", ""), &ca, None).await.expect("amqps connection");
    let before = served().await;

    let renewed = pki.server();
    pki.write("server", &renewed);
    send_sighup(b.broker.pid().expect("broker pid"));
    let deadline = Instant::now() + TIMEOUT;
    while served().await != renewed.der() {
        assert!(Instant::now() < deadline, "new handshakes still get the old certificate");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(before, renewed.der());
    round_trip(&old, b"still here").await;

    // A reload that fails keeps the certificate in use.
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    send_sighup(b.broker.pid().unwrap());
    eventually("the failed reload is logged", || async {
        b.broker.log().contains("TLS certificate files not reloaded").then_some(())
    })
    .await;
    let line = b.broker.log().lines().find(|l| l.contains("not reloaded")).unwrap().to_owned();
    assert!(line.contains(&pki.path("server.key").display().to_string()), "the file is named: {line}");
    assert_eq!(served().await, renewed.der());
    round_trip(&old, b"and still here").await;
    assert!(b.broker.is_running());
}

#[tokio::test]
async fn a_silent_client_is_dropped_by_the_handshake_timeout() {
    let pki = Pki::new("Warren test CA");
    let b = TlsBroker::start(&pki, &["--handshake-timeout", "300"]).await;
    let mut silent = TcpStream::connect(b.tls).await.unwrap();
    let mut buf = [0u8; 16];
    // Sends nothing; the broker closes the socket (EOF or a reset) once the timeout is over.
    let read = within(silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    eventually("the timeout is logged", || async {
        b.broker.log().contains("TLS handshake not completed in time").then_some(())
    })
    .await;
}

#[test]
fn a_bad_certificate_file_stops_startup_naming_it() {
    let pki = Pki::new("Warren test CA");
    pki.write("server", &pki.server());
    std::fs::write(pki.path("garbage.pem"), "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    std::fs::write(pki.path("empty.pem"), "").unwrap();
    let data = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &Path); 3] = [
        ("missing.pem", "server.key", &pki.path("missing.pem")),
        ("empty.pem", "server.key", &pki.path("empty.pem")),
        ("server.pem", "garbage.pem", &pki.path("garbage.pem")),
    ];
    for (cert, key, named) in cases {
        // Bounded: a broker that starts anyway must not hang the test.
        let output = Command::new("timeout")
            .arg(TIMEOUT.as_secs().to_string())
            .arg(env!("CARGO_BIN_EXE_warren"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--tls-listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(data.path())
            .arg("--tls-certfile")
            .arg(pki.path(cert))
            .arg("--tls-keyfile")
            .arg(pki.path(key))
            .output()
            .expect("run warren");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started with {cert}/{key}");
        assert!(stderr.contains(&named.display().to_string()), "{named:?} not named: {stderr}");
    }
}
