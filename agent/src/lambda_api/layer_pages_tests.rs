//! ListLayers and ListLayerVersions pages through the REST router, on an agent with
//! the fake backend: MaxItems and Marker as Lambda takes them, NextMarker until the
//! last page, a version deleted between two pages, and MaxItems outside 1-50 refused.

use super::request::ApiRequest;
use super::LambdaApi;
use crate::fake::guest::Script;
use crate::fake::harness::{bundle, Harness};
use crate::layers::NewLayer;
use serde_json::Value;

fn get(path: &str, query: &str) -> ApiRequest {
    ApiRequest {
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// The answer's status and JSON body (Lambda's error shape on failure).
async fn call(api: &LambdaApi, path: &str, query: &str) -> (u16, Value) {
    match super::router::route(api, get(path, query), None).await {
        Ok(r) => (r.status, serde_json::from_slice(&r.body).unwrap()),
        Err(e) => (
            e.status,
            serde_json::json!({ "Type": e.code, "Message": e.message }),
        ),
    }
}

fn publish(h: &Harness, name: &str) {
    h.agent
        .publish_layer(NewLayer {
            name: name.into(),
            zip: bundle(name),
            ..Default::default()
        })
        .unwrap();
}

fn names(v: &Value) -> Vec<String> {
    v["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["LayerName"].as_str().unwrap().to_string())
        .collect()
}

fn versions(v: &Value) -> Vec<u64> {
    v["LayerVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["Version"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn list_layers_pages_by_name() {
    let h = Harness::open(Script::echo(), &[]);
    for n in ["gamma", "alpha", "beta"] {
        publish(&h, n);
    }
    let api = LambdaApi::new(h.agent.clone());
    const P: &str = "/2018-10-31/layers";

    let (s, v) = call(&api, P, "MaxItems=2").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v), ["alpha", "beta"]);
    assert_eq!(v["NextMarker"], "beta");
    let (s, v) = call(&api, P, "MaxItems=2&Marker=beta").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v), ["gamma"]);
    assert!(
        v.get("NextMarker").is_none(),
        "the last page has no NextMarker: {v}"
    );
    // Without MaxItems: up to 50, here all of them.
    let (_, v) = call(&api, P, "").await;
    assert_eq!(names(&v), ["alpha", "beta", "gamma"]);
    assert!(v.get("NextMarker").is_none(), "{v}");
    // Exactly a full page: no NextMarker either.
    let (_, v) = call(&api, P, "MaxItems=3").await;
    assert_eq!(names(&v).len(), 3);
    assert!(v.get("NextMarker").is_none(), "{v}");
}

#[tokio::test]
async fn list_layer_versions_pages_newest_first_across_a_deletion() {
    let h = Harness::open(Script::echo(), &[]);
    for _ in 0..5 {
        publish(&h, "deps");
    }
    let api = LambdaApi::new(h.agent.clone());
    const P: &str = "/2018-10-31/layers/deps/versions";

    let (s, v) = call(&api, P, "MaxItems=2").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(versions(&v), [5, 4]);
    assert_eq!(v["NextMarker"], "4");
    // Deleted between two pages: the walk goes on after the marker.
    h.agent.delete_layer_version("deps", 3).unwrap();
    let (_, v) = call(&api, P, "MaxItems=2&Marker=4").await;
    assert_eq!(versions(&v), [2, 1]);
    assert!(v.get("NextMarker").is_none(), "{v}");

    let (s, v) = call(&api, P, "Marker=not-a-version").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["Type"], "InvalidParameterValueException");
    assert!(v["Message"].as_str().unwrap().contains("start over"), "{v}");
}

#[tokio::test]
async fn max_items_outside_1_to_50_is_refused_saying_the_range() {
    let h = Harness::open(Script::echo(), &[]);
    publish(&h, "deps");
    let api = LambdaApi::new(h.agent.clone());
    for path in ["/2018-10-31/layers", "/2018-10-31/layers/deps/versions"] {
        for bad in ["0", "51", "-1", "ten"] {
            let (s, v) = call(&api, path, &format!("MaxItems={bad}")).await;
            assert_eq!(s, 400, "{path} MaxItems={bad}: {v}");
            assert_eq!(v["Type"], "InvalidParameterValueException");
            let msg = v["Message"].as_str().unwrap();
            assert!(
                msg.contains(&format!("'{bad}' at 'maxItems'")) && msg.contains("from 1 to 50"),
                "{msg}"
            );
        }
        let (s, v) = call(&api, path, "MaxItems=50").await;
        assert_eq!(s, 200, "{path}: {v}");
    }
}
