//! A TCP proxy between sasgate and a dependency (Azurite), switched at run time to make the
//! dependency unreachable, slow or unresponsive for real: sasgate's own HTTP client, TLS and
//! connection pool go through it unchanged (the proxy copies bytes; Azurite's certificate names
//! 127.0.0.1, which the proxy's address is too).
//!
//! ```ignore
//! let proxy = Proxy::start(([127, 0, 0, 1], azurite.port()).into()).await;
//! // point the account's blob_endpoint at https://127.0.0.1:<proxy.port()>/devstoreaccount1
//! proxy.set(Mode::Refuse).await;                          // connection refused
//! proxy.set(Mode::Delay(Duration::from_secs(2))).await;   // every chunk held 2 s
//! proxy.set(Mode::Blackhole).await;                       // accepted, never answered
//! proxy.set(Mode::Pass).await;
//! proxy.drop_connections();                               // reset every open connection
//! ```
//!
//! A mode applies to new connections and to open ones at their next chunk, so a pooled
//! keep-alive connection cannot slip past an outage: under `Refuse` an open connection is reset,
//! under `Blackhole` its chunks are swallowed (and, once the mode changes again, it is reset,
//! since it has lost data), under `Delay` each chunk waits before it is forwarded (and is lost
//! if the mode has turned to `Blackhole` by then, or resets the connection under `Refuse`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// How the proxy treats traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways as it comes.
    Pass,
    /// Nothing listens on the port (new connections get ECONNREFUSED), and open connections are
    /// reset.
    Refuse,
    /// Every chunk, either way, is held this long before it is forwarded.
    Delay(Duration),
    /// Connections are accepted and read, but nothing is forwarded and nothing answers.
    Blackhole,
}

/// A running proxy on `127.0.0.1:<port>`, stopped on drop (open connections are reset).
pub struct Proxy {
    port: u16,
    mode: watch::Sender<Mode>,
    epoch: watch::Sender<u64>,
    listening: watch::Receiver<bool>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// How long a switch to or from `Refuse` may take to (un)bind the port.
const REBIND_DEADLINE: Duration = Duration::from_secs(10);

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`, in `Pass` mode.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let (epoch, epoch_rx) = watch::channel(0u64);
        let (listening_tx, listening) = watch::channel(true);
        let accepted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            port,
            upstream,
            mode_rx,
            epoch_rx,
            listening_tx,
            accepted.clone(),
        ));
        Self {
            port,
            mode,
            epoch,
            listening,
            accepted,
            task,
        }
    }

    /// The port sasgate should connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Switches the mode; returns once the port is (un)bound accordingly.
    pub async fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
        let want = mode != Mode::Refuse;
        let mut listening = self.listening.clone();
        tokio::time::timeout(REBIND_DEADLINE, listening.wait_for(|l| *l == want))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the proxy did not {} port {} within {REBIND_DEADLINE:?}",
                    if want { "bind" } else { "release" },
                    self.port
                )
            })
            .unwrap();
    }

    /// Resets every open connection (new ones are treated by the mode).
    pub fn drop_connections(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        // Dropping the senders (with `self`) ends every connection task.
    }
}

async fn accept_loop(
    first: TcpListener,
    port: u16,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    epoch: watch::Receiver<u64>,
    listening: watch::Sender<bool>,
    accepted: Arc<AtomicU64>,
) {
    let mut listener = Some(first);
    loop {
        let current = *mode.borrow_and_update();
        match (current, listener.is_some()) {
            (Mode::Refuse, true) => {
                // Closing the listening socket: the kernel refuses new connections (and resets
                // any still in the accept queue).
                listener = None;
                listening.send_replace(false);
            }
            (Mode::Refuse, false) => {}
            (_, false) => {
                listener = Some(rebind(port).await);
                listening.send_replace(true);
            }
            (_, true) => {}
        }
        match &listener {
            None => {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            Some(l) => {
                tokio::select! {
                    conn = l.accept() => {
                        if let Ok((client, _)) = conn {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(handle(client, upstream, mode.clone(), epoch.clone()));
                        }
                    }
                    changed = mode.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Binds `port` again (SO_REUSEADDR, so connections in TIME_WAIT do not block it), retrying
/// briefly in case the kernel has not released it yet.
async fn rebind(port: u16) -> TcpListener {
    let deadline = tokio::time::Instant::now() + REBIND_DEADLINE;
    loop {
        let attempt = (|| {
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
            socket.listen(1024)
        })();
        match attempt {
            Ok(l) => return l,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the proxy could not bind port {port} again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// How one connection ended.
enum End {
    Closed,
    Reset,
}

async fn handle(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    mut epoch: watch::Receiver<u64>,
) {
    epoch.borrow_and_update();
    let _ = client.set_nodelay(true);
    let at_accept = *mode.borrow_and_update();
    let upstream = match at_accept {
        Mode::Refuse => None,
        Mode::Blackhole => None,
        Mode::Pass | Mode::Delay(_) => match TcpStream::connect(upstream).await {
            Ok(s) => Some(s),
            Err(_) => {
                let _ = client.set_zero_linger();
                return;
            }
        },
    };
    let (mut cr, mut cw) = client.into_split();
    // A blackholed connection has lost data: it can never carry traffic again.
    let poisoned = AtomicBool::new(upstream.is_none());
    let end = match upstream {
        None => {
            tokio::select! {
                _ = drain(&mut cr) => End::Closed,
                _ = interrupted(&mut mode, &mut epoch, &poisoned) => End::Reset,
            }
        }
        Some(up) => {
            let _ = up.set_nodelay(true);
            let (mut ur, mut uw) = up.into_split();
            let end = {
                let to_upstream = pump(&mut cr, &mut uw, mode.clone(), &poisoned);
                let to_client = pump(&mut ur, &mut cw, mode.clone(), &poisoned);
                tokio::pin!(to_upstream, to_client);
                let (mut up_done, mut down_done) = (false, false);
                loop {
                    tokio::select! {
                        r = &mut to_upstream, if !up_done => {
                            if r.is_err() { break End::Reset; }
                            up_done = true;
                        }
                        r = &mut to_client, if !down_done => {
                            if r.is_err() { break End::Reset; }
                            down_done = true;
                        }
                        _ = interrupted(&mut mode, &mut epoch, &poisoned) => break End::Reset,
                    }
                    if up_done && down_done {
                        break End::Closed;
                    }
                }
            };
            if matches!(end, End::Reset) {
                let _ = uw.as_ref().set_zero_linger();
            }
            drop((ur, uw));
            end
        }
    };
    if matches!(end, End::Reset) {
        // SO_LINGER 0: the close sends RST, as a dropped network path or a crashed peer would.
        let _ = cw.as_ref().set_zero_linger();
    }
}

/// Reads and discards until the peer closes.
async fn drain(from: &mut OwnedReadHalf) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Copies one direction, chunk by chunk, as the mode says at each chunk.
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
    poisoned: &AtomicBool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        let current = *mode.borrow();
        match current {
            Mode::Pass => to.write_all(&buf[..n]).await?,
            Mode::Delay(d) => {
                tokio::time::sleep(d).await;
                // What the link does once the chunk is due: a link that has gone dark since
                // loses it.
                let due = *mode.borrow();
                match due {
                    Mode::Blackhole => poisoned.store(true, Ordering::Relaxed),
                    Mode::Refuse => return Err(std::io::ErrorKind::ConnectionReset.into()),
                    Mode::Pass | Mode::Delay(_) => to.write_all(&buf[..n]).await?,
                }
            }
            Mode::Blackhole => poisoned.store(true, Ordering::Relaxed),
            Mode::Refuse => return Err(std::io::ErrorKind::ConnectionReset.into()),
        }
    }
}

/// Resolves when the connection must be reset: on `drop_connections`, on `Refuse`, when a
/// poisoned connection leaves `Blackhole`, or when the proxy is gone.
async fn interrupted(
    mode: &mut watch::Receiver<Mode>,
    epoch: &mut watch::Receiver<u64>,
    poisoned: &AtomicBool,
) {
    loop {
        tokio::select! {
            changed = epoch.changed() => {
                let _ = changed;
                return;
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *mode.borrow_and_update();
                if now == Mode::Refuse
                    || (now != Mode::Blackhole && poisoned.load(Ordering::Relaxed))
                {
                    return;
                }
            }
        }
    }
}
