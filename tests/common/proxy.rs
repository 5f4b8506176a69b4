//! A broker of the test's own behind a fault-injecting TCP proxy: the development broker
//! listens on one port and advertises the proxy's, so every connection of every client
//! (after bootstrap too) passes through the proxy. While produce requests are set to
//! fail, a connection that sends one (API key 0) is cut before the request reaches the
//! broker: the producer sees its request fail and retries it. Other requests (fetches,
//! commits, metadata, group membership) go through untouched; they travel on other
//! connections (librdkafka's consumer and producer are separate clients).

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use super::PATIENCE;

/// Kafka's Produce API key.
const PRODUCE: i16 = 0;
/// Larger frames are passed through unparsed (none of the test's come near it).
const MAX_FRAME: usize = 64 * 1024 * 1024;

pub struct ProxiedBroker {
    _broker: Child,
    /// The proxy's address: the cluster's bootstrap (and advertised) address.
    pub address: String,
    failing: Arc<AtomicBool>,
    /// Produce requests refused so far.
    refused: Arc<AtomicUsize>,
}

impl ProxiedBroker {
    pub async fn start() -> Self {
        let path =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker"))
                .arg("path")
                .output()
                .expect("run scripts/broker path");
        assert!(
            path.status.success(),
            "scripts/broker path: {}",
            String::from_utf8_lossy(&path.stderr)
        );
        let tansu = String::from_utf8_lossy(&path.stdout).trim().to_string();
        let proxy = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = proxy.local_addr().expect("proxy address").to_string();
        let backend = format!("127.0.0.1:{}", super::free_port());
        let broker = Command::new(&tansu)
            .arg("broker")
            .args(["--listener-url", &format!("tcp://{backend}")])
            .args(["--advertised-listener-url", &format!("tcp://{address}")])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the broker");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while TcpStream::connect(&backend).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the broker does not listen on {backend}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let failing = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        tokio::spawn(serve(proxy, backend, failing.clone(), refused.clone()));
        Self {
            _broker: broker,
            address,
            failing,
            refused,
        }
    }

    /// From now on (until [`ProxiedBroker::recover`]) every produce request fails.
    pub fn fail_produce(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    pub fn recover(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }

    /// Produce requests refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn serve(
    proxy: TcpListener,
    backend: String,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
) {
    while let Ok((client, _)) = proxy.accept().await {
        let Ok(server) = TcpStream::connect(&backend).await else {
            continue; // the client sees its connection closed
        };
        let (failing, refused) = (failing.clone(), refused.clone());
        tokio::spawn(async move {
            let (client_read, client_write) = client.into_split();
            let (server_read, mut server_write) = server.into_split();
            let requests = async {
                let mut client_read = client_read;
                loop {
                    let mut size = [0u8; 4];
                    client_read.read_exact(&mut size).await?;
                    let len = u32::from_be_bytes(size) as usize;
                    if len > MAX_FRAME {
                        return Err(std::io::Error::other("frame too large"));
                    }
                    let mut frame = vec![0u8; len];
                    client_read.read_exact(&mut frame).await?;
                    let api_key = frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]]));
                    if api_key == Some(PRODUCE) && failing.load(Ordering::SeqCst) {
                        refused.fetch_add(1, Ordering::SeqCst);
                        return Ok(()); // cut: both halves are dropped
                    }
                    server_write.write_all(&size).await?;
                    server_write.write_all(&frame).await?;
                }
            };
            let responses = async {
                let (mut server_read, mut client_write) = (server_read, client_write);
                tokio::io::copy(&mut server_read, &mut client_write).await
            };
            // Whichever direction ends first ends the connection.
            tokio::select! {
                _ = requests => {}
                _ = responses => {}
            }
        });
    }
}
