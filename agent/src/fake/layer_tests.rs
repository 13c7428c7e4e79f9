//! Layers on a backend that cannot mount /opt (the fake one, as the microVM): a
//! function with layers is accepted, and its layers reach flint-init as zips, one
//! Layer frame each in the function's order, before Configure; an instance whose
//! flint-init does not report them all installed is refused, never run without them.
//! More than five layers are refused first, in Lambda's words.

use super::guest::{Answer, Script};
use super::harness::{bundle, json, Harness};
use crate::functions::ConfigChange;
use crate::layers::NewLayer;

/// Publishes layer `name` whose zip's version.txt says `name`; returns its ARN.
fn publish(h: &Harness, name: &str) -> String {
    let l = h
        .agent
        .publish_layer(NewLayer {
            name: name.into(),
            zip: bundle(name),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(l.version, 1);
    h.agent.layer_version_arn(name, 1)
}

fn with_layers(arns: &[String]) -> ConfigChange {
    ConfigChange {
        layers: Some(arns.to_vec()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_backend_without_opt_mounts_sends_the_layers_in_order_before_configure() {
    let h = Harness::open(Script::answering(Answer::Echo), &[]);
    assert!(!h.agent.backend().mounts_code());
    h.create("f", "v1");
    let arns: Vec<String> = ["c", "a", "b"].iter().map(|n| publish(&h, n)).collect();
    let f = h.agent.update_config("f", with_layers(&arns)).unwrap();
    assert_eq!(f.layers.len(), 3);

    let doc = json(&h.invoke_ok("f", "{}").await);
    assert_eq!(doc["code"], "v1");
    let sandbox = doc["sandbox"].as_str().unwrap().to_string();
    let got: Vec<(u64, String, String)> = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["index"].as_u64().unwrap(),
                l["arn"].as_str().unwrap().to_string(),
                l["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String, String)> = ["c", "a", "b"]
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u64, arns[i].clone(), n.to_string()))
        .collect();
    assert_eq!(got, want, "every layer, in the function's order");

    // On the stream: the three Layer frames, then Configure.
    let kinds: Vec<&str> = h
        .backend
        .messages(&sandbox)
        .into_iter()
        .filter(|k| *k == "Layer" || *k == "Configure")
        .collect();
    assert_eq!(kinds, ["Layer", "Layer", "Layer", "Configure"]);

    // A new order retires the instance; the next one gets the new order.
    let reordered = vec![arns[2].clone(), arns[0].clone()];
    h.agent.update_config("f", with_layers(&reordered)).unwrap();
    let doc = json(&h.invoke_ok("f", "{}").await);
    let versions: Vec<&str> = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["b", "c"]);
}

#[tokio::test]
async fn an_instance_whose_init_drops_the_layers_is_refused() {
    let h = Harness::open(
        Script {
            drop_layers: true,
            ..Script::echo()
        },
        &[],
    );
    h.create("f", "v1");
    let arn = publish(&h, "deps");
    h.agent.update_config("f", with_layers(&[arn])).unwrap();
    let e = h.invoke("f", "{}").await.unwrap_err().to_string();
    assert!(
        e.contains("flint-init installed 0 of the function's 1 layers: rebuild flint-init"),
        "{e}"
    );
    // Without layers the same flint-init serves.
    h.agent.update_config("f", with_layers(&[])).unwrap();
    let doc = json(&h.invoke_ok("f", "{}").await);
    assert_eq!(doc["layers"], serde_json::json!([]));
}

#[tokio::test]
async fn more_than_five_layers_are_refused() {
    let h = Harness::open(Script::answering(Answer::Echo), &[]);
    h.create("f", "v1");
    let arn = publish(&h, "deps");
    let e = h
        .agent
        .update_config("f", with_layers(&vec![arn; 6]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Member must have length less than or equal to 5"),
        "{e}"
    );
    // No layers is fine anywhere.
    let f = h.agent.update_config("f", with_layers(&[])).unwrap();
    assert!(f.layers.is_empty());
}
