//! The Unix-socket side of the vsock device (Firecracker's hybrid protocol): routes guest
//! packets to connections, accepts host connections on `uds_path` ("CONNECT <port>\n" ->
//! "OK <hostport>\n"), dials `<uds_path>_<port>` for guest connections, and produces the
//! packets that go to the guest. Owns the epoll set the worker thread waits on.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use super::connection::{ConnState, Connection, RxPacket};
use super::packet::{op, PacketHeader, TYPE_STREAM};
use super::{HOST_CID, TOKEN_FIRST_FD, TOKEN_LISTENER};
use crate::warn_ratelimited;

/// How long the guest has to answer a host-initiated REQUEST.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest accepted "CONNECT <port>\n" line.
const MAX_HANDSHAKE: usize = 32;
/// First host-side port handed out for host-initiated connections.
const FIRST_LOCAL_PORT: u32 = 1 << 30;
/// Most simultaneous connections (host-initiated handshakes included).
pub const MAX_CONNECTIONS: usize = 1024;

/// (host-side port, guest-side port).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ConnKey {
    /// Host-side port.
    pub local_port: u32,
    /// Guest-side port.
    pub peer_port: u32,
}

/// A host connection that has not finished its "CONNECT <port>\n" line.
struct Handshake {
    stream: UnixStream,
    line: Vec<u8>,
}

/// The connection multiplexer.
pub struct Muxer {
    guest_cid: u64,
    uds_path: PathBuf,
    epoll: Epoll,
    listener: UnixListener,
    handshakes: HashMap<RawFd, Handshake>,
    conns: HashMap<ConnKey, Connection>,
    by_fd: HashMap<RawFd, ConnKey>,
    /// Packets not tied to a live connection (RSTs), sent before anything else.
    ctrl: VecDeque<PacketHeader>,
    rx_list: VecDeque<ConnKey>,
    next_local_port: u32,
}

fn token(fd: RawFd) -> u64 {
    TOKEN_FIRST_FD + fd as u64
}

/// An RST answering `hdr` (ports swapped).
pub fn rst_for(hdr: &PacketHeader) -> PacketHeader {
    PacketHeader {
        src_cid: hdr.dst_cid,
        dst_cid: hdr.src_cid,
        src_port: hdr.dst_port,
        dst_port: hdr.src_port,
        type_: TYPE_STREAM,
        op: op::RST,
        ..Default::default()
    }
}

impl Muxer {
    /// A muxer accepting host connections on `listener` (bound at `uds_path`).
    pub fn new(guest_cid: u64, uds_path: PathBuf, listener: UnixListener) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            listener.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TOKEN_LISTENER),
        )?;
        Ok(Muxer {
            guest_cid,
            uds_path,
            epoll,
            listener,
            handshakes: HashMap::new(),
            conns: HashMap::new(),
            by_fd: HashMap::new(),
            ctrl: VecDeque::new(),
            rx_list: VecDeque::new(),
            next_local_port: FIRST_LOCAL_PORT,
        })
    }

    /// The epoll set (the worker adds its eventfds with tokens below `TOKEN_FIRST_FD`).
    pub fn epoll(&self) -> &Epoll {
        &self.epoll
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Whether a packet for the guest may be ready.
    pub fn has_rx(&self) -> bool {
        !self.ctrl.is_empty() || !self.rx_list.is_empty()
    }

    /// Earliest connect deadline, if any host-initiated connection awaits the guest.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| match c.state() {
                ConnState::LocalInit(d) => Some(d),
                ConnState::Established => None,
            })
            .min()
    }

    /// Resets connections whose guest never answered.
    pub fn expire(&mut self, now: Instant) {
        let expired: Vec<ConnKey> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state(), ConnState::LocalInit(d) if d <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            warn_ratelimited!(
                port = key.peer_port,
                "vsock: guest did not accept a host connection in time"
            );
            self.kill(key);
        }
    }

    /// An epoll event for a token at or above `TOKEN_LISTENER`.
    pub fn handle_event(&mut self, token_value: u64, events: EventSet) {
        if token_value == TOKEN_LISTENER {
            self.accept_all();
            return;
        }
        let Some(fd) = token_value
            .checked_sub(TOKEN_FIRST_FD)
            .and_then(|v| RawFd::try_from(v).ok())
        else {
            return;
        };
        if self.handshakes.contains_key(&fd) {
            self.advance_handshake(fd);
            return;
        }
        let Some(&key) = self.by_fd.get(&fd) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        if events
            .intersects(EventSet::IN | EventSet::HANG_UP | EventSet::READ_HANG_UP | EventSet::ERROR)
        {
            conn.on_readable();
        }
        if events.intersects(EventSet::OUT | EventSet::HANG_UP | EventSet::ERROR) {
            if let Err(e) = conn.flush_tx() {
                tracing::debug!(error = %e, "vsock: host socket write failed; resetting");
                return self.kill(key);
            }
            if conn.is_finished() {
                return self.kill(key);
            }
        }
        self.refresh(key);
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.conns.len() + self.handshakes.len() >= MAX_CONNECTIONS {
                        warn_ratelimited!(
                            "vsock: too many connections; refusing a host connection"
                        );
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let fd = stream.as_raw_fd();
                    let ev = EpollEvent::new(EventSet::IN, token(fd));
                    if self.epoll.ctl(ControlOperation::Add, fd, ev).is_ok() {
                        self.handshakes.insert(
                            fd,
                            Handshake {
                                stream,
                                line: Vec::new(),
                            },
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        warn_ratelimited!(error = %e, "vsock: accept failed");
                    }
                    return;
                }
            }
        }
    }

    /// Reads the handshake one byte at a time so no payload after the line is consumed.
    fn advance_handshake(&mut self, fd: RawFd) {
        let Some(hs) = self.handshakes.get_mut(&fd) else {
            return;
        };
        let mut byte = [0u8; 1];
        let port = loop {
            match hs.stream.read(&mut byte) {
                Ok(1) if byte[0] == b'\n' => break parse_connect(&hs.line),
                Ok(1) if hs.line.len() < MAX_HANDSHAKE => hs.line.push(byte[0]),
                Ok(_) => break None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break None,
            }
        };
        let Some(hs) = self.handshakes.remove(&fd) else {
            return;
        };
        let _ = self
            .epoll
            .ctl(ControlOperation::Delete, fd, EpollEvent::default());
        let Some(peer_port) = port else {
            warn_ratelimited!("vsock: bad handshake from a host connection; closing it");
            return;
        };
        let local_port = self.allocate_local_port();
        let key = ConnKey {
            local_port,
            peer_port,
        };
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let conn =
            Connection::local_init(hs.stream, self.guest_cid, local_port, peer_port, deadline);
        self.insert(key, conn);
    }

    fn allocate_local_port(&mut self) -> u32 {
        loop {
            let p = self.next_local_port;
            self.next_local_port = self
                .next_local_port
                .checked_add(1)
                .unwrap_or(FIRST_LOCAL_PORT);
            if !self.conns.keys().any(|k| k.local_port == p) {
                return p;
            }
        }
    }

    fn insert(&mut self, key: ConnKey, conn: Connection) {
        self.by_fd.insert(conn.stream().as_raw_fd(), key);
        self.conns.insert(key, conn);
        self.refresh(key);
    }

    /// Drops a connection and tells the guest with an RST.
    fn kill(&mut self, key: ConnKey) {
        self.drop_conn(key, true);
    }

    /// Drops a connection (closing the host socket), optionally sending the guest an RST.
    fn drop_conn(&mut self, key: ConnKey, send_rst: bool) {
        if let Some(conn) = self.conns.remove(&key) {
            let fd = conn.stream().as_raw_fd();
            self.by_fd.remove(&fd);
            if !conn.registered.is_empty() {
                let _ = self
                    .epoll
                    .ctl(ControlOperation::Delete, fd, EpollEvent::default());
            }
            if !send_rst {
                return;
            }
            self.ctrl.push_back(PacketHeader {
                src_cid: HOST_CID,
                dst_cid: self.guest_cid,
                src_port: key.local_port,
                dst_port: key.peer_port,
                type_: TYPE_STREAM,
                op: op::RST,
                ..Default::default()
            });
        }
    }

    /// Brings the epoll registration and the rx work list in line with the connection.
    fn refresh(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let want = conn.interest();
        if want != conn.registered {
            let fd = conn.stream().as_raw_fd();
            let ev = EpollEvent::new(want, token(fd));
            let res = if conn.registered.is_empty() {
                self.epoll.ctl(ControlOperation::Add, fd, ev)
            } else if want.is_empty() {
                self.epoll.ctl(ControlOperation::Delete, fd, ev)
            } else {
                self.epoll.ctl(ControlOperation::Modify, fd, ev)
            };
            match res {
                Ok(()) => conn.registered = want,
                Err(e) => {
                    warn_ratelimited!(error = %e, "vsock: epoll_ctl failed; resetting connection");
                    return self.kill(key);
                }
            }
        }
        if conn.wants_rx() && !conn.in_rx_list {
            conn.in_rx_list = true;
            self.rx_list.push_back(key);
        }
    }

    /// Handles one packet from the guest's tx queue.
    pub fn send_pkt(&mut self, hdr: &PacketHeader, data: &[u8]) {
        if hdr.src_cid != self.guest_cid || hdr.dst_cid != HOST_CID {
            warn_ratelimited!(
                src = hdr.src_cid,
                dst = hdr.dst_cid,
                "vsock: packet with wrong CIDs dropped"
            );
            return;
        }
        if hdr.type_ != TYPE_STREAM {
            if hdr.op != op::RST {
                self.ctrl.push_back(rst_for(hdr));
            }
            return;
        }
        let key = ConnKey {
            local_port: hdr.dst_port,
            peer_port: hdr.src_port,
        };
        let Some(conn) = self.conns.get_mut(&key) else {
            match hdr.op {
                op::REQUEST => self.connect_to_host(key, hdr),
                op::RST => {}
                _ => self.ctrl.push_back(rst_for(hdr)),
            }
            return;
        };
        conn.update_peer_credit(hdr);
        let keep = match hdr.op {
            op::RESPONSE if matches!(conn.state(), ConnState::LocalInit(_)) => {
                conn.on_response().is_ok()
            }
            op::RW if conn.accepts_data() => match conn.on_data(data) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "vsock: forwarding guest data failed; resetting");
                    false
                }
            },
            op::CREDIT_UPDATE => true,
            op::CREDIT_REQUEST => {
                conn.on_credit_request();
                true
            }
            op::SHUTDOWN => !conn.on_shutdown(hdr.flags),
            op::RST => {
                self.drop_conn(key, false);
                return;
            }
            _ => false,
        };
        if keep {
            self.refresh(key);
        } else {
            self.kill(key);
        }
    }

    /// Answers a malformed packet with RST, dropping its connection if it has one.
    pub fn reset_for(&mut self, hdr: &PacketHeader) {
        if hdr.src_cid != self.guest_cid || hdr.dst_cid != HOST_CID || hdr.op == op::RST {
            return;
        }
        let key = ConnKey {
            local_port: hdr.dst_port,
            peer_port: hdr.src_port,
        };
        if self.conns.contains_key(&key) {
            self.kill(key);
        } else {
            self.ctrl.push_back(rst_for(hdr));
        }
    }

    /// Guest-initiated: dial `<uds_path>_<port>`; RST if nothing listens.
    fn connect_to_host(&mut self, key: ConnKey, hdr: &PacketHeader) {
        if self.conns.len() + self.handshakes.len() >= MAX_CONNECTIONS {
            warn_ratelimited!("vsock: too many connections; refusing a guest connection");
            return self.ctrl.push_back(rst_for(hdr));
        }
        let mut path = self.uds_path.clone().into_os_string();
        path.push(format!("_{}", key.local_port));
        let stream = match UnixStream::connect(&path) {
            Ok(s) if s.set_nonblocking(true).is_ok() => s,
            _ => {
                tracing::debug!(
                    port = key.local_port,
                    "vsock: nothing listens for a guest connection"
                );
                return self.ctrl.push_back(rst_for(hdr));
            }
        };
        let conn =
            Connection::peer_init(stream, self.guest_cid, key.local_port, key.peer_port, hdr);
        self.insert(key, conn);
    }

    /// The next packet for the guest with at most `max_data` payload bytes, if any.
    pub fn recv_pkt(&mut self, max_data: u32) -> Option<RxPacket> {
        if let Some(hdr) = self.ctrl.pop_front() {
            return Some(RxPacket {
                hdr,
                data: Vec::new(),
            });
        }
        while let Some(key) = self.rx_list.pop_front() {
            let Some(conn) = self.conns.get_mut(&key) else {
                continue;
            };
            conn.in_rx_list = false;
            match conn.next_rx(max_data) {
                Ok(Some(pkt)) => {
                    self.refresh(key);
                    return Some(pkt);
                }
                Ok(None) => self.refresh(key),
                Err(e) => {
                    tracing::debug!(error = %e, "vsock: host socket read failed; resetting");
                    self.kill(key);
                    return self.ctrl.pop_front().map(|hdr| RxPacket {
                        hdr,
                        data: Vec::new(),
                    });
                }
            }
        }
        None
    }
}

/// Parses "CONNECT <port>" (the newline already stripped).
pub fn parse_connect(line: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let port = s.strip_prefix("CONNECT ")?;
    port.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_line_parsing() {
        assert_eq!(parse_connect(b"CONNECT 1024"), Some(1024));
        assert_eq!(parse_connect(b"CONNECT 52\r"), Some(52));
        assert_eq!(parse_connect(b"CONNECT"), None);
        assert_eq!(parse_connect(b"CONNECT -1"), None);
        assert_eq!(parse_connect(b"connect 5"), None);
        assert_eq!(parse_connect(b"CONNECT 99999999999"), None);
        assert_eq!(parse_connect(&[0xff, 0xfe]), None);
    }
}
