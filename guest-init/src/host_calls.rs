//! Calls from flint-init to the host on the function's behalf (flint.init.v1
//! `HostCall` / `HostCallReply`): each call gets an id, is sent over the host link, and
//! waits (bounded) until the control loop delivers the reply with that id.

use crate::host_link::HostLink;
use flint_proto::init::{
    guest_message::Msg, host_call::Kind, host_call_reply::Kind as ReplyKind, HostCall,
    HostCallReply,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;
use std::time::Duration;

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The host link is broken
    #[error("the host connection is closed")]
    Closed,
    /// No reply in time
    #[error("the host did not answer within {0:?}")]
    Timeout(Duration),
    /// The host answered with an error
    #[error("{0}")]
    Host(String),
}

/// Outstanding calls, by id.
#[derive(Default)]
pub struct HostCalls {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, SyncSender<HostCallReply>>>,
}

impl HostCalls {
    /// Sends `kind` to the host through `link` and waits up to `timeout` for the reply.
    pub fn call(
        &self,
        link: &HostLink,
        kind: Kind,
        timeout: Duration,
    ) -> Result<ReplyKind, CallError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = sync_channel(1);
        self.lock().insert(id, tx);
        let sent = link.send(Msg::Call(HostCall {
            id,
            kind: Some(kind),
        }));
        let got = match sent {
            Ok(()) => rx
                .recv_timeout(timeout)
                .map_err(|_| CallError::Timeout(timeout)),
            Err(_) => Err(CallError::Closed),
        };
        self.lock().remove(&id);
        match got?.kind {
            Some(ReplyKind::Error(e)) => Err(CallError::Host(e)),
            Some(k) => Ok(k),
            None => Err(CallError::Host("empty reply".into())),
        }
    }

    /// Hands a reply from the host to the call waiting for it (late replies are dropped).
    pub fn deliver(&self, reply: HostCallReply) {
        if let Some(tx) = self.lock().remove(&reply.id) {
            let _ = tx.try_send(reply);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SyncSender<HostCallReply>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flint_proto::frame::read_frame;
    use flint_proto::init::{CredentialsRequest, GuestMessage, RoleCredentials};
    use std::sync::Arc;

    /// A writer whose frames a test reads back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reply_reaches_the_call_with_its_id_and_others_time_out() {
        let sink = Sink::default();
        let link = Arc::new(HostLink::new(Box::new(sink.clone())));
        let calls = Arc::new(HostCalls::default());
        let (c2, l2) = (calls.clone(), link.clone());
        let waiter = std::thread::spawn(move || {
            c2.call(
                &l2,
                Kind::Credentials(CredentialsRequest {}),
                Duration::from_secs(5),
            )
        });
        // Wait for the call's frame, then answer it.
        let frame = loop {
            let bytes = sink.0.lock().unwrap().clone();
            if !bytes.is_empty() {
                break bytes;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let msg: GuestMessage = read_frame(&mut frame.as_slice()).unwrap();
        let Some(Msg::Call(call)) = msg.msg else {
            panic!("not a call: {msg:?}")
        };
        calls.deliver(HostCallReply {
            id: call.id + 100,
            kind: Some(ReplyKind::Error("stray".into())),
        });
        calls.deliver(HostCallReply {
            id: call.id,
            kind: Some(ReplyKind::Credentials(RoleCredentials {
                access_key_id: "ASIAX".into(),
                ..Default::default()
            })),
        });
        match waiter.join().unwrap().unwrap() {
            ReplyKind::Credentials(c) => assert_eq!(c.access_key_id, "ASIAX"),
            other => panic!("{other:?}"),
        }
        let err = calls
            .call(
                &link,
                Kind::Credentials(CredentialsRequest {}),
                Duration::from_millis(20),
            )
            .unwrap_err();
        assert!(matches!(err, CallError::Timeout(_)), "{err}");
        assert!(calls.lock().is_empty());
    }
}
