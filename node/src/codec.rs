//! The sync protocol's codec: postcard (compact: no field names on the wire, byte strings
//! as they are), with explicit size limits, counting every byte each way (what
//! `jalin sync status` and the catch-up benchmark report).

use jalin_protocol::sync::{self, Message};
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes and messages of the sync protocol, each way, since the node started.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes of requests and responses sent.
    pub bytes_sent: AtomicU64,
    /// Bytes of requests and responses received.
    pub bytes_received: AtomicU64,
    /// Requests sent (each is one round trip).
    pub requests_sent: AtomicU64,
    /// Requests answered.
    pub requests_received: AtomicU64,
    /// Full sync rounds started (`Hello` requests sent).
    pub rounds_started: AtomicU64,
    /// A copy of every message sent, once [`Traffic::keep_sent`] asked for it (tests that
    /// look for what must never leave the node), at most [`SENT_COPY_MAX`] bytes.
    sent_copy: std::sync::Mutex<Option<Vec<u8>>>,
}

/// Bytes of sent messages [`Traffic::keep_sent`] keeps, at most.
pub const SENT_COPY_MAX: usize = 64 << 20;

/// A snapshot of [`Traffic`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrafficCounts {
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Requests sent (round trips).
    pub requests_sent: u64,
    /// Requests answered.
    pub requests_received: u64,
    /// Full sync rounds started (`Hello` requests sent).
    #[serde(default)]
    pub rounds_started: u64,
}

impl Traffic {
    /// From now on, keeps a copy of every message sent (sync and interlibrary loan, in
    /// their plain encoding, before the connection encrypts them).
    pub fn keep_sent(&self) {
        let mut copy = self.sent_copy.lock().unwrap_or_else(|p| p.into_inner());
        copy.get_or_insert_with(Vec::new);
    }

    /// The messages sent since [`Traffic::keep_sent`], end to end.
    pub fn sent(&self) -> Vec<u8> {
        let copy = self.sent_copy.lock().unwrap_or_else(|p| p.into_inner());
        copy.clone().unwrap_or_default()
    }

    fn note_sent(&self, bytes: &[u8]) {
        self.bytes_sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let mut copy = self.sent_copy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(copy) = copy.as_mut() {
            if copy.len() + bytes.len() <= SENT_COPY_MAX {
                copy.extend_from_slice(bytes);
            }
        }
    }

    /// The counts now.
    pub fn counts(&self) -> TrafficCounts {
        TrafficCounts {
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            requests_sent: self.requests_sent.load(Ordering::Relaxed),
            requests_received: self.requests_received.load(Ordering::Relaxed),
            rounds_started: self.rounds_started.load(Ordering::Relaxed),
        }
    }
}

/// postcard with limits and counters.
pub struct Codec<Req, Resp> {
    request_bytes_max: u64,
    response_bytes_max: u64,
    traffic: Arc<Traffic>,
    kinds: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> Clone for Codec<Req, Resp> {
    fn clone(&self) -> Self {
        Codec {
            request_bytes_max: self.request_bytes_max,
            response_bytes_max: self.response_bytes_max,
            traffic: self.traffic.clone(),
            kinds: PhantomData,
        }
    }
}

impl<Req, Resp> Codec<Req, Resp> {
    /// A codec refusing requests over `request_bytes_max` and responses over
    /// `response_bytes_max`, counting into `traffic`.
    pub fn new(request_bytes_max: u64, response_bytes_max: u64, traffic: Arc<Traffic>) -> Self {
        Codec {
            request_bytes_max,
            response_bytes_max,
            traffic,
            kinds: PhantomData,
        }
    }
}

async fn read<T: AsyncRead + Unpin + Send, M: Message>(
    io: &mut T,
    max: u64,
    counter: &AtomicU64,
) -> io::Result<M> {
    let mut bytes = Vec::new();
    // One byte over the limit tells a message that is too big from one that fits.
    io.take(max + 1).read_to_end(&mut bytes).await?;
    counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    tracing::debug!("sync message in: {} bytes, {}", bytes.len(), kind(&bytes));
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    sync::decode(&bytes, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn encode<M: Message>(message: M, traffic: &Traffic) -> io::Result<Vec<u8>> {
    let bytes =
        sync::encode(&message).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    traffic.note_sent(&bytes);
    tracing::debug!("sync message out: {} bytes, {}", bytes.len(), kind(&bytes));
    Ok(bytes)
}

/// The message's variant number, for the debug log (postcard's first byte).
fn kind(bytes: &[u8]) -> String {
    bytes
        .first()
        .map_or_else(|| "empty".into(), |b| format!("variant {b}"))
}

impl<Req, Resp> request_response::Codec for Codec<Req, Resp>
where
    Req: Send + Message,
    Resp: Send + Message,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        let request = read(io, self.request_bytes_max, &self.traffic.bytes_received).await?;
        self.traffic
            .requests_received
            .fetch_add(1, Ordering::Relaxed);
        Ok(request)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read(io, self.response_bytes_max, &self.traffic.bytes_received).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Req,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.traffic.requests_sent.fetch_add(1, Ordering::Relaxed);
        if request.starts_round() {
            self.traffic.rounds_started.fetch_add(1, Ordering::Relaxed);
        }
        let bytes = encode(request, &self.traffic)?;
        io.write_all(&bytes).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = encode(response, &self.traffic)?;
        io.write_all(&bytes).await
    }
}
