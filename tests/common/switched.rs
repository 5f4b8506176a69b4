//! A test server's listening socket, which a test can switch off: while down the port
//! is closed (connections are refused, as with an API server that is not running) and
//! every open connection is cut, watches included; switched on, the same port listens
//! again.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// Up or down, shared by the listener and every connection.
pub struct Switch {
    down: watch::Sender<bool>,
    /// Connections waiting on their socket, woken when the server goes down so they
    /// notice at once.
    waiting: Mutex<HashMap<u64, Waker>>,
    next_id: AtomicU64,
    /// The socket bound again by [`Switch::set_down`]`(false)`, so that the port listens
    /// the moment a test says "up", before the accept loop runs.
    rebound: Mutex<Option<TcpListener>>,
    addr: Mutex<Option<SocketAddr>>,
}

impl Switch {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            down: watch::Sender::new(false),
            waiting: Mutex::default(),
            next_id: AtomicU64::new(0),
            rebound: Mutex::default(),
            addr: Mutex::default(),
        })
    }

    pub fn is_down(&self) -> bool {
        *self.down.borrow()
    }

    pub fn set_down(&self, down: bool) {
        if !down && self.is_down() {
            let addr = self.addr.lock().ok().and_then(|a| *a);
            if let Some(addr) = addr {
                // Bound here, so the port listens when this returns.
                if let Ok(listener) = bind(addr) {
                    if let Ok(mut rebound) = self.rebound.lock() {
                        *rebound = Some(listener);
                    }
                }
            }
        }
        self.down.send_replace(down);
        if down {
            if let Ok(mut rebound) = self.rebound.lock() {
                rebound.take();
            }
            let wakers: Vec<Waker> = self
                .waiting
                .lock()
                .map(|mut w| w.drain().map(|(_, w)| w).collect())
                .unwrap_or_default();
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    pub async fn wait_for(&self, down: bool) {
        let mut rx = self.down.subscribe();
        let _ = rx.wait_for(|d| *d == down).await;
    }

    fn park(&self, id: u64, waker: &Waker) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id, waker.clone());
        }
    }
}

/// Binds `addr` (port 0 for any) with `SO_REUSEADDR`, so the port can be taken again
/// after a down period.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

pub struct SwitchedListener {
    addr: SocketAddr,
    listener: Option<TcpListener>,
    switch: Arc<Switch>,
}

impl SwitchedListener {
    pub fn new(listener: TcpListener, switch: Arc<Switch>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        if let Ok(mut slot) = switch.addr.lock() {
            *slot = Some(addr);
        }
        Ok(Self {
            addr,
            listener: Some(listener),
            switch,
        })
    }
}

impl axum::serve::Listener for SwitchedListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            if self.switch.is_down() {
                // Closing the socket is what makes connecting fail with "refused".
                self.listener = None;
                self.switch.wait_for(false).await;
                continue;
            }
            if self.listener.is_none() {
                self.listener = self.switch.rebound.lock().ok().and_then(|mut r| r.take());
            }
            let listener = match &self.listener {
                Some(listener) => listener,
                None => match bind(self.addr) {
                    Ok(listener) => self.listener.insert(listener),
                    Err(_) => {
                        // The port is briefly unavailable; try again.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, peer)) = accepted {
                        let id = self.switch.next_id.fetch_add(1, Ordering::Relaxed);
                        let connection = Connection { stream, switch: self.switch.clone(), id };
                        return (connection, peer);
                    }
                }
                _ = self.switch.wait_for(true) => {}
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// An accepted connection that fails as soon as the server goes down.
pub struct Connection {
    stream: TcpStream,
    switch: Arc<Switch>,
    id: u64,
}

impl Connection {
    fn cut(&self) -> Option<io::Error> {
        self.switch.is_down().then(|| {
            io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the test API server is down",
            )
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.switch.waiting.lock() {
            waiting.remove(&self.id);
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.cut() {
            return Poll::Ready(Err(error));
        }
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if polled.is_pending() {
            this.switch.park(this.id, cx.waker());
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.cut() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.cut() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
