//! One vsock stream between a guest port and a host Unix socket: its state machine
//! (virtio 1.2, 5.10.6.4-5.10.6.7) and credit-based flow control in both directions.
//! Knows nothing about queues or epoll; the muxer drives it.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::Shutdown;
use std::num::Wrapping;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use vmm_sys_util::epoll::EventSet;

use super::packet::{op, PacketHeader, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};
use super::{CONN_BUF_ALLOC, HOST_CID};

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Host-initiated: REQUEST sent to the guest, waiting for RESPONSE until the deadline.
    LocalInit(Instant),
    /// Data may flow.
    Established,
}

/// Control packets waiting to go to the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pending {
    request: bool,
    response: bool,
    credit_update: bool,
    shutdown: bool,
}

/// Errors that end a connection (the muxer answers them with RST).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// the guest sent more data than the credit it was given
    #[error("the guest sent more data than the credit it was given")]
    CreditOverrun,
    /// host socket I/O failed: {0}
    #[error("host socket I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// A packet the connection wants to send to the guest.
#[derive(Debug, PartialEq, Eq)]
pub struct RxPacket {
    /// Header (ports, op, credit filled in; `len` set when written).
    pub hdr: PacketHeader,
    /// Payload (RW only).
    pub data: Vec<u8>,
}

/// One connection.
pub struct Connection {
    stream: UnixStream,
    guest_cid: u64,
    /// Host-side port (what the guest sees as the peer port).
    pub local_port: u32,
    /// Guest-side port.
    pub peer_port: u32,
    state: ConnState,
    pending: Pending,
    /// The host socket may have bytes (or EOF) we have not read.
    readable: bool,
    /// The host socket reached EOF.
    host_eof: bool,
    /// The guest will send no more data.
    peer_shut_send: bool,
    /// The guest will receive no more data.
    peer_shut_rcv: bool,
    /// The guest asked to close both directions; finish when `tx_buf` is flushed.
    closing: bool,
    tx_buf: VecDeque<u8>,
    fwd_cnt: Wrapping<u32>,
    last_fwd_cnt_sent: Wrapping<u32>,
    rx_cnt: Wrapping<u32>,
    peer_buf_alloc: u32,
    peer_fwd_cnt: Wrapping<u32>,
    /// epoll interest currently registered (empty = not registered).
    pub registered: EventSet,
    /// Whether the muxer has the connection in its rx work list.
    pub in_rx_list: bool,
}

/// Writes without raising SIGPIPE on a closed peer.
fn send_nosignal(stream: &UnixStream, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable slice of `buf.len()` bytes for the whole call and
    // the fd is owned by `stream`, which outlives the call.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl Connection {
    /// A host-initiated connection: REQUEST goes to the guest first.
    pub fn local_init(
        stream: UnixStream,
        guest_cid: u64,
        local_port: u32,
        peer_port: u32,
        deadline: Instant,
    ) -> Self {
        let mut c = Self::new(
            stream,
            guest_cid,
            local_port,
            peer_port,
            ConnState::LocalInit(deadline),
        );
        c.pending.request = true;
        c
    }

    /// A guest-initiated connection the host accepted: RESPONSE goes to the guest first.
    pub fn peer_init(
        stream: UnixStream,
        guest_cid: u64,
        local_port: u32,
        peer_port: u32,
        hdr: &PacketHeader,
    ) -> Self {
        let mut c = Self::new(
            stream,
            guest_cid,
            local_port,
            peer_port,
            ConnState::Established,
        );
        c.pending.response = true;
        c.update_peer_credit(hdr);
        c
    }

    fn new(
        stream: UnixStream,
        guest_cid: u64,
        local_port: u32,
        peer_port: u32,
        state: ConnState,
    ) -> Self {
        Connection {
            stream,
            guest_cid,
            local_port,
            peer_port,
            state,
            pending: Pending::default(),
            readable: false,
            host_eof: false,
            peer_shut_send: false,
            peer_shut_rcv: false,
            closing: false,
            tx_buf: VecDeque::new(),
            fwd_cnt: Wrapping(0),
            last_fwd_cnt_sent: Wrapping(0),
            rx_cnt: Wrapping(0),
            peer_buf_alloc: 0,
            peer_fwd_cnt: Wrapping(0),
            registered: EventSet::empty(),
            in_rx_list: false,
        }
    }

    /// The host socket.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Current state.
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// Bytes the guest can still take: its buf_alloc minus what is in flight.
    pub fn peer_credit(&self) -> u32 {
        self.peer_buf_alloc
            .saturating_sub((self.rx_cnt - self.peer_fwd_cnt).0)
    }

    /// Records the guest's credit information carried by every packet.
    pub fn update_peer_credit(&mut self, hdr: &PacketHeader) {
        self.peer_buf_alloc = hdr.buf_alloc;
        self.peer_fwd_cnt = Wrapping(hdr.fwd_cnt);
    }

    /// The guest accepted a host-initiated connection: tell the host "OK <port>".
    pub fn on_response(&mut self) -> Result<(), ConnError> {
        let ack = format!("OK {}\n", self.local_port);
        let n = send_nosignal(&self.stream, ack.as_bytes())?;
        if n != ack.len() {
            return Err(ConnError::Io(io::ErrorKind::WriteZero.into()));
        }
        self.state = ConnState::Established;
        Ok(())
    }

    /// Guest data for the host: written through, the rest buffered within our credit.
    pub fn on_data(&mut self, data: &[u8]) -> Result<(), ConnError> {
        let mut written = 0;
        if self.tx_buf.is_empty() {
            written = match send_nosignal(&self.stream, data) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e.into()),
            };
            self.fwd_cnt += written as u32;
        }
        if self.tx_buf.len() + (data.len() - written) > CONN_BUF_ALLOC as usize {
            return Err(ConnError::CreditOverrun);
        }
        self.tx_buf.extend(&data[written..]);
        self.maybe_credit_update();
        Ok(())
    }

    /// The host socket can take more: flush buffered guest data.
    pub fn flush_tx(&mut self) -> Result<(), ConnError> {
        while !self.tx_buf.is_empty() {
            let (front, _) = self.tx_buf.as_slices();
            match send_nosignal(&self.stream, front) {
                Ok(0) => return Err(ConnError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.tx_buf.drain(..n);
                    self.fwd_cnt += n as u32;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        self.maybe_credit_update();
        if self.tx_buf.is_empty() && self.peer_shut_send {
            // Best effort: the host may already have closed.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        Ok(())
    }

    fn maybe_credit_update(&mut self) {
        if (self.fwd_cnt - self.last_fwd_cnt_sent).0 >= CONN_BUF_ALLOC / 2 {
            self.pending.credit_update = true;
        }
    }

    /// The guest asked for our credit.
    pub fn on_credit_request(&mut self) {
        self.pending.credit_update = true;
    }

    /// The guest shut down one or both directions. Returns true when the connection is
    /// finished (both directions shut and nothing left to forward).
    pub fn on_shutdown(&mut self, flags: u32) -> bool {
        self.peer_shut_rcv |= flags & SHUTDOWN_RCV != 0;
        self.peer_shut_send |= flags & SHUTDOWN_SEND != 0;
        if self.peer_shut_send && self.tx_buf.is_empty() {
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        if self.peer_shut_rcv && self.peer_shut_send {
            self.closing = true;
        }
        self.is_finished()
    }

    /// Both sides are done and everything was forwarded.
    pub fn is_finished(&self) -> bool {
        self.closing && self.tx_buf.is_empty()
    }

    /// Whether the guest may still send data.
    pub fn accepts_data(&self) -> bool {
        self.state == ConnState::Established && !self.peer_shut_send
    }

    /// The host socket signalled readiness to read (or hang-up).
    pub fn on_readable(&mut self) {
        self.readable = true;
    }

    fn can_send_data(&self) -> bool {
        self.state == ConnState::Established
            && self.readable
            && !self.host_eof
            && !self.peer_shut_rcv
            && self.peer_credit() > 0
    }

    /// Whether the connection has something for the guest right now.
    pub fn wants_rx(&self) -> bool {
        self.pending != Pending::default() || self.can_send_data()
    }

    /// epoll interest the connection needs: read while it can forward to the guest and
    /// the socket is not known to be readable; write while guest data is buffered.
    pub fn interest(&self) -> EventSet {
        let mut ev = EventSet::empty();
        if self.state == ConnState::Established
            && !self.readable
            && !self.host_eof
            && !self.peer_shut_rcv
        {
            ev |= EventSet::IN;
        }
        if !self.tx_buf.is_empty() {
            ev |= EventSet::OUT;
        }
        ev
    }

    fn header(&mut self, op: u16, flags: u32) -> PacketHeader {
        self.last_fwd_cnt_sent = self.fwd_cnt;
        self.pending.credit_update = false;
        PacketHeader {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: self.local_port,
            dst_port: self.peer_port,
            len: 0,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc: CONN_BUF_ALLOC,
            fwd_cnt: self.fwd_cnt.0,
        }
    }

    /// The next packet for the guest, with at most `max_data` payload bytes. A host
    /// socket error gives `Err` (the muxer resets the connection).
    pub fn next_rx(&mut self, max_data: u32) -> Result<Option<RxPacket>, ConnError> {
        let pkt = |hdr| {
            Ok(Some(RxPacket {
                hdr,
                data: Vec::new(),
            }))
        };
        if self.pending.request {
            self.pending.request = false;
            return pkt(self.header(op::REQUEST, 0));
        }
        if self.pending.response {
            self.pending.response = false;
            return pkt(self.header(op::RESPONSE, 0));
        }
        if self.can_send_data() && max_data > 0 {
            let n = self.peer_credit().min(max_data) as usize;
            let mut data = vec![0u8; n];
            match self.stream.read(&mut data) {
                Ok(0) => {
                    self.host_eof = true;
                    self.readable = false;
                    self.pending.shutdown = true;
                }
                Ok(got) => {
                    data.truncate(got);
                    self.rx_cnt += got as u32;
                    let hdr = self.header(op::RW, 0);
                    return Ok(Some(RxPacket { hdr, data }));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.pending.shutdown {
            self.pending.shutdown = false;
            // The host closed (at least) its sending side: we will send no more.
            return pkt(self.header(op::SHUTDOWN, SHUTDOWN_SEND));
        }
        if self.pending.credit_update {
            return pkt(self.header(op::CREDIT_UPDATE, 0));
        }
        Ok(None)
    }
}
