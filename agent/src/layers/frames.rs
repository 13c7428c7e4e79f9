//! A function's layers as zips for a backend that cannot mount /opt (the microVM:
//! its memory is the VM's own): one `Layer` frame per layer, in the function's order,
//! sent before `Configure`; flint-init unpacks each over the ones before it into a
//! read-only /opt (guest-init/src/layers.rs). The namespace sandbox mounts the
//! unpacked tree instead ([`super::tree`]).

use crate::code::CodeError;
use crate::core::Agent;
use crate::store::layers::LayerRef;
use flint_proto::init::Layer;

impl Agent {
    /// The zips of `layers`, in order, as flint-init's Layer frames. Blocking: the
    /// code store.
    pub(crate) fn layer_frames(&self, layers: &[LayerRef]) -> Result<Vec<Layer>, CodeError> {
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Ok(Layer {
                    index: i as u32,
                    arn: self.layer_version_arn(&l.name, l.version),
                    zip: self.code().get(&l.sha256)?,
                })
            })
            .collect()
    }
}
