//! The byte streams a client connection is served over: plain TCP, or TLS over TCP. The serving
//! code is generic over them, so that the plain path is compiled as before: its own owned
//! halves, no lock between reader and writer, no dynamic dispatch per read or write.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A stream that splits into a read half (the connection's task) and a write half (its writer
/// task).
pub trait Transport: Send + 'static {
    type Reader: AsyncRead + Unpin + Send + 'static;
    type Writer: AsyncWrite + Unpin + Send + 'static;

    fn into_split(self) -> (Self::Reader, Self::Writer);
}

impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        TcpStream::into_split(self)
    }
}

/// One TLS session serves both directions, so its halves share it (tokio's split: a lock taken
/// only while a half is polled).
impl Transport for TlsStream<TcpStream> {
    type Reader = tokio::io::ReadHalf<Self>;
    type Writer = tokio::io::WriteHalf<Self>;

    fn into_split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}
