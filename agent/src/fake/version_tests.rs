//! Versions on the fake backend: each version keeps its own warm instances and code,
//! updating $LATEST retires only $LATEST's instances, code garbage collection keeps
//! every bundle a version references, an alias routes by its weight, and the version
//! that ran is reported and recorded.

use super::guest::Script;
use super::harness::{json, Harness};
use crate::invoke::InvokeError;
use crate::store::versions::{Alias, Routing};
use crate::store::StoreError;

fn publish(h: &Harness, name: &str) -> u64 {
    h.agent
        .publish_version(name, "", |_| Ok(()))
        .unwrap()
        .number
}

#[tokio::test]
async fn each_version_keeps_its_own_instances_and_code() {
    let h = Harness::open(Script::echo(), &[]);
    h.create("f", "v1");
    assert_eq!(publish(&h, "f"), 1);
    h.agent
        .update_code("f", &super::harness::bundle("v2"))
        .unwrap();

    let one = h.invoke_ok("f:1", "{}").await;
    assert_eq!(json(&one)["code"], "v1", "version 1 runs its own code");
    assert_eq!(one.executed_version, "1");
    let latest = h.invoke_ok("f", "{}").await;
    assert_eq!(json(&latest)["code"], "v2");
    assert_eq!(latest.executed_version, "$LATEST");
    assert_ne!(
        json(&one)["sandbox"],
        json(&latest)["sandbox"],
        "an instance of version 1 never serves $LATEST"
    );
    let again = h.invoke_ok("f:1", "{}").await;
    assert_eq!(
        json(&again)["sandbox"],
        json(&one)["sandbox"],
        "version 1 is warm"
    );

    // Updating $LATEST retires $LATEST's instance only.
    h.agent
        .update_code("f", &super::harness::bundle("v3"))
        .unwrap();
    let warm = h.invoke_ok("f:1", "{}").await;
    assert!(!warm.timings.cold_start, "version 1's instance survived");
    assert_eq!(json(&warm)["sandbox"], json(&one)["sandbox"]);
    let fresh = h.invoke_ok("f:$LATEST", "{}").await;
    assert!(fresh.timings.cold_start, "$LATEST's instance was retired");
    assert_eq!(json(&fresh)["code"], "v3");

    let versions: Vec<String> = h.records().iter().map(|r| r.version.clone()).collect();
    assert_eq!(versions, ["1", "$LATEST", "1", "1", "$LATEST"]);
}

#[test]
fn a_recreated_functions_version_one_is_another_instance_revision() {
    use crate::invoke::place_revision as rev;
    let old = crate::store::tests::sample("f");
    let new = crate::store::Function {
        last_modified: "2026-12-06T00:00:01.000Z".into(),
        ..old.clone()
    };
    assert_ne!(rev(&old, "1"), rev(&new, "1"));
    assert_eq!(rev(&old, "1"), rev(&old.clone(), "1"));
    assert_eq!(rev(&old, "$LATEST"), old.revision);
}

#[tokio::test]
async fn a_published_bundle_is_kept_until_its_last_version_goes() {
    let h = Harness::open(Script::echo(), &[]);
    h.create("f", "v1");
    let v1 = h.agent.publish_version("f", "", |_| Ok(())).unwrap();
    let sha1 = v1.config.code_sha256.clone();
    // $LATEST moves on: the bundle stays for version 1, even after a collection.
    h.agent
        .update_code("f", &super::harness::bundle("v2"))
        .unwrap();
    h.agent.collect_code();
    assert!(
        h.agent.code().get(&sha1).is_ok(),
        "version 1's bundle was collected"
    );
    assert_eq!(json(&h.invoke_ok("f:1", "{}").await)["code"], "v1");
    // Deleting the version lets it go.
    h.agent.delete_version("f", 1).unwrap();
    assert!(
        h.agent.code().get(&sha1).is_err(),
        "the unreferenced bundle was kept"
    );
    match h.invoke("f:1", "{}").await {
        Err(InvokeError::Store(StoreError::NotFound(n))) => assert_eq!(n, "f:1"),
        other => panic!("a deleted version ran: {other:?}"),
    }
    // Numbers are not reused.
    h.agent
        .update_code("f", &super::harness::bundle("v3"))
        .unwrap();
    assert_eq!(publish(&h, "f"), 2);
}

#[tokio::test]
async fn an_alias_routes_by_weight_and_reports_what_ran() {
    let h = Harness::open(Script::echo(), &[]);
    h.create("f", "v1");
    publish(&h, "f");
    h.agent
        .update_code("f", &super::harness::bundle("v2"))
        .unwrap();
    publish(&h, "f");
    let alias = |weight| Alias {
        function: "f".into(),
        name: "live".into(),
        version: "1".into(),
        routing: Some(Routing {
            version: "2".into(),
            weight,
        }),
        description: String::new(),
        revision: 1,
    };
    h.agent.create_alias(&alias(1.0)).unwrap();
    for _ in 0..5 {
        let out = h.invoke_ok("f:live", "{}").await;
        assert_eq!(out.executed_version, "2");
        assert_eq!(json(&out)["code"], "v2");
    }
    h.agent
        .update_alias("f", "live", |a| {
            a.routing = Some(Routing {
                version: "2".into(),
                weight: 0.0,
            });
            Ok(())
        })
        .unwrap();
    for _ in 0..5 {
        assert_eq!(h.invoke_ok("f:live", "{}").await.executed_version, "1");
    }
    assert!(
        h.agent.create_alias(&alias(0.5)).is_err(),
        "the name is taken"
    );
    match h.invoke("f:nope", "{}").await {
        Err(InvokeError::Store(StoreError::NotFound(n))) => assert_eq!(n, "f:nope"),
        other => panic!("an unknown alias ran: {other:?}"),
    }
    // Deleting the function deletes its versions and aliases.
    h.agent.delete_function("f", false).unwrap();
    h.create("f", "v9");
    assert!(h.agent.list_versions("f").unwrap().is_empty());
    assert!(h.agent.list_aliases("f").unwrap().is_empty());
}
