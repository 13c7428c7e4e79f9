//! Layers on a backend that cannot mount /opt (the fake one, as the microVM): a layer
//! version can be published, but a function with layers is refused, naming the
//! namespace backend; more than five layers are refused first, in Lambda's words.

use super::guest::{Answer, Script};
use super::harness::Harness;
use crate::functions::ConfigChange;
use crate::layers::NewLayer;

#[tokio::test]
async fn a_backend_without_opt_mounts_refuses_functions_with_layers() {
    let h = Harness::open(Script::answering(Answer::Echo), &[]);
    h.create("f", "v1");
    let zip = crate::code::tests::make_zip(&[("python/m.py", b"x = 1\n", None)]);
    let l = h
        .agent
        .publish_layer(NewLayer {
            name: "deps".into(),
            zip,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(l.version, 1);
    let arn = h.agent.layer_version_arn("deps", 1);
    let change = |n: usize| ConfigChange {
        layers: Some(vec![arn.clone(); n]),
        ..Default::default()
    };
    let e = h
        .agent
        .update_config("f", change(1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the fake sandbox backend cannot mount layers")
            && e.contains("--sandbox namespace"),
        "{e}"
    );
    let e = h
        .agent
        .update_config("f", change(6))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Member must have length less than or equal to 5"),
        "{e}"
    );
    // No layers is fine anywhere.
    let f = h.agent.update_config("f", change(0)).unwrap();
    assert!(f.layers.is_empty());
}
