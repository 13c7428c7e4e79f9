//! The host <-> flint-init frame decoder (flint-proto `frame::read_frame`): a stream of
//! length-prefixed protobuf frames, decoded as the messages each side reads. Whatever
//! the bytes, decoding ends with a message or an error, and a decoded message encodes
//! back to a frame that decodes to the same message.
#![no_main]

use flint_proto::frame::{encode, read_frame, FrameError};
use flint_proto::init::{GuestMessage, HostMessage};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn drain<M: Message + Default + PartialEq>(mut data: &[u8]) {
    for _ in 0..64 {
        match read_frame::<_, M>(&mut data) {
            Ok(m) => {
                let again = encode(&m).expect("a decoded message re-encodes");
                let back: M = read_frame(&mut again.as_slice()).expect("round trip");
                assert!(back == m, "frame round trip changed the message");
            }
            Err(FrameError::Closed) => return,
            Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // flintd reads what the guest sends; flint-init reads what the host sends.
    drain::<GuestMessage>(data);
    drain::<HostMessage>(data);
});
