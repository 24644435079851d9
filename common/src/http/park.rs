//! Kept-alive connections that hold no HTTP state between requests.
//!
//! hyper 1.12 gives every HTTP/1 connection an 8 KiB read buffer and an 8 KiB buffer for
//! the answer's head (`INIT_BUFFER_SIZE`, not a setting of its server) and keeps them
//! for as long as the connection is open. A crowd told to come back in a few seconds
//! keeps its connections open meanwhile: 7,000–15,000 of them in the 20× spike, most of
//! the door's resident memory. So a connection is served by hyper only while it has a
//! request to answer: once every answer it owes is written and the client has sent
//! nothing more, the connection's [`Parkable`] socket tells hyper the stream ended,
//! hyper finishes without closing it, and the connection is *parked*: its socket alone,
//! waiting to be readable, until the client's next request starts a new hyper
//! connection on it. The client sees one kept-alive connection throughout.
//!
//! A connection is let go only once every answer it owes is written and flushed, one of
//! them after the last bytes the client sent, and the socket has nothing more to read.
//! A client that pipelines may have sent part of its next request by then: hyper, let
//! go, reports that request incomplete, and the bytes it had read are handed to the
//! next hyper connection on the socket ahead of the rest.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use axum::body::Body;
use bytes::{Buf as _, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What the requests of one connection have asked and been answered, as its service
/// sees them, for its socket to judge when the connection may be parked.
#[derive(Debug, Default)]
pub(super) struct Answers {
    /// Requests handed to the service.
    started: AtomicU64,
    /// Answers written whole (their bodies done with).
    finished: AtomicU64,
}

impl Answers {
    fn owed(&self) -> bool {
        self.started.load(Ordering::Relaxed) != self.finished.load(Ordering::Relaxed)
    }

    fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }
}

/// A connection's socket as hyper sees it: the stream, ended early (a read of nothing)
/// when the connection may be parked.
pub(super) struct Parkable {
    stream: TcpStream,
    /// Bytes hyper had read but not parsed when it was last let go (none, unless a
    /// client pipelined).
    leftover: Bytes,
    answers: Arc<Answers>,
    /// Every byte the client sent belongs to an answer written and flushed since.
    quiet: bool,
    /// [`Answers::finished`] when the client's bytes were last read.
    finished_at_read: u64,
    /// The stream was ended early for hyper.
    parked: bool,
}

impl Parkable {
    pub(super) fn new(stream: TcpStream, leftover: Bytes, answers: Arc<Answers>) -> Self {
        Self {
            stream,
            leftover,
            answers,
            quiet: true,
            finished_at_read: 0,
            parked: false,
        }
    }

    /// The socket, and whether hyper was let go (rather than ending the connection
    /// itself: the client's close, `Connection: close`, a drain).
    pub(super) fn into_parts(self) -> (TcpStream, bool) {
        (self.stream, self.parked)
    }

    fn heard(&mut self) {
        self.quiet = false;
        self.finished_at_read = self.answers.finished();
    }
}

impl AsyncRead for Parkable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.leftover.is_empty() {
            let n = this.leftover.len().min(buf.remaining());
            buf.put_slice(&this.leftover[..n]);
            this.leftover.advance(n);
            this.heard();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.heard();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.quiet && !this.answers.owed() => {
                this.parked = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Parkable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// hyper flushes its socket once it has written everything it buffered: if by then
    /// every answer is finished, and one finished after the client's last bytes, the
    /// connection is quiet.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.stream).poll_flush(cx))?;
        if !this.answers.owed() && this.answers.finished() > this.finished_at_read {
            this.quiet = true;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A connection's service: the role's router, counting requests and answers in
/// [`Answers`]. Its future is boxed so that hyper can hand the connection back.
#[derive(Clone)]
pub(super) struct Counted<S> {
    pub(super) inner: S,
    pub(super) answers: Arc<Answers>,
}

type Answer = hyper::Response<Finishing>;

impl<S> hyper::service::Service<hyper::Request<Incoming>> for Counted<S>
where
    S: tower::Service<
            hyper::Request<Body>,
            Response = axum::response::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let answers = Arc::clone(&self.answers);
        answers.started.fetch_add(1, Ordering::Relaxed);
        let answer = tower::ServiceExt::oneshot(self.inner.clone(), request.map(Body::new));
        Box::pin(async move {
            let Ok(response) = answer.await;
            Ok(response.map(|body| Finishing { body, answers }))
        })
    }
}

/// An answer's body that counts the answer finished when hyper is done with it.
pub(super) struct Finishing {
    body: Body,
    answers: Arc<Answers>,
}

impl Drop for Finishing {
    fn drop(&mut self) {
        self.answers.finished.fetch_add(1, Ordering::Relaxed);
    }
}

impl hyper::body::Body for Finishing {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
