//! Races in the registry and the content-addressed code store (issue 14): concurrent
//! create, update-code and delete of functions sharing byte-identical code never
//! leave a function without its code, never answer INTERNAL for a function that is
//! gone, and never show a host path to the client.

use flint_integration::*;
use flint_proto::v1::*;
use tonic::Code;

const APP: &str = "def handler(e, c):\n    return {'shared': True}\n";

/// Creates `create` and deletes `delete` at the same time, both with the same code.
async fn create_while_deleting(agent: &TestAgent, create: &str, delete: &str) {
    let mut c1 = agent.client().await;
    let mut c2 = agent.client().await;
    let req = python_function(create, APP);
    let (made, gone) = tokio::join!(
        c1.functions.create_function(req),
        c2.functions.delete_function(DeleteFunctionRequest {
            name: delete.into(),
            force: false,
        })
    );
    let made = made.unwrap_or_else(|e| panic!("create {create}: {e:?}"));
    gone.unwrap_or_else(|e| panic!("delete {delete}: {e:?}"));
    let sha = made.into_inner().code_sha256;
    let file = agent.data_dir.join("code").join(format!("{sha}.zip"));
    assert!(
        file.is_file(),
        "{create} was created with code {sha} while {delete} (same code) was deleted, \
         and the bundle is gone from the store"
    );
}

#[tokio::test]
async fn creating_while_deleting_a_function_with_identical_code_keeps_the_code() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function("fa", APP))
        .await
        .expect("create fa");
    // fa and fb take turns: create one while deleting the other.
    for i in 0..1000 {
        let (create, delete) = if i % 2 == 0 {
            ("fb", "fa")
        } else {
            ("fa", "fb")
        };
        create_while_deleting(&agent, create, delete).await;
    }
    let r = invoke(&mut c, "fa", "{}").await;
    assert_eq!(
        r.function_error,
        "",
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    assert_eq!(json(&r)["shared"], true);
}

/// Every failure a racing call may see: NOT_FOUND, with no host path in it.
fn check_race_error(what: &str, e: &tonic::Status, data_dir: &std::path::Path) {
    assert_eq!(
        e.code(),
        Code::NotFound,
        "{what} racing a delete: {:?} {}",
        e.code(),
        e.message()
    );
    let dir = data_dir.to_string_lossy();
    assert!(
        !e.message().contains(dir.as_ref()) && !e.message().contains("/code/"),
        "{what}: host path in {:?}",
        e.message()
    );
}

#[tokio::test]
async fn update_code_racing_delete_is_ok_or_not_found_without_host_paths() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    for i in 0..150 {
        c.functions
            .create_function(python_function("racy", APP))
            .await
            .expect("create racy");
        // New code each round, so the update really writes a bundle while the
        // delete collects garbage.
        let code = zip_files(&[("app.py", &format!("def handler(e, c):\n    return {i}\n"))]);
        let mut c1 = agent.client().await;
        let mut c2 = agent.client().await;
        let mut c3 = agent.client().await;
        let (upd, del, got) = tokio::join!(
            c1.functions
                .update_function_code(UpdateFunctionCodeRequest {
                    name: "racy".into(),
                    code_zip: code,
                }),
            c2.functions.delete_function(DeleteFunctionRequest {
                name: "racy".into(),
                force: false,
            }),
            c3.functions.get_function(GetFunctionRequest {
                name: "racy".into()
            }),
        );
        if let Err(e) = &upd {
            check_race_error("update-code", e, &agent.data_dir);
        }
        if let Err(e) = &got {
            check_race_error("get", e, &agent.data_dir);
        }
        del.expect("delete racy");
        // Nothing is left: the function is gone and so is every bundle.
        let left: Vec<_> = std::fs::read_dir(agent.data_dir.join("code"))
            .expect("code dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "round {i}: bundles left behind: {left:?}");
    }
}

#[tokio::test]
async fn invoke_racing_update_code_and_delete_runs_old_or_new_code_or_is_not_found() {
    let agent = TestAgent::start_args(300, &["--pool-max", "0"]).await;
    let mut c = agent.client().await;
    let code =
        |i: usize| zip_files(&[("app.py", &format!("def handler(e, c):\n    return {i}\n"))]);
    let mut req = python_function("moving", "");
    req.code_zip = code(0);
    c.functions.create_function(req).await.unwrap();
    for i in 1..=40 {
        let mut c1 = agent.client().await;
        let mut c2 = agent.client().await;
        let (upd, r) = tokio::join!(
            c1.functions
                .update_function_code(UpdateFunctionCodeRequest {
                    name: "moving".into(),
                    code_zip: code(i),
                }),
            c2.invocations.invoke(InvokeRequest {
                function_name: "moving".into(),
                payload: b"{}".to_vec(),
                ..Default::default()
            }),
        );
        upd.expect("update-code");
        let r = r.unwrap_or_else(|e| panic!("round {i}: invoke racing update-code: {e:?}"));
        let r = r.into_inner();
        assert_eq!(
            r.function_error,
            "",
            "{}",
            String::from_utf8_lossy(&r.payload)
        );
        let v = json(&r);
        assert!(v == i - 1 || v == i, "round {i}: ran code {v}");
    }
    // And racing a delete: the result, or NOT_FOUND.
    let mut c1 = agent.client().await;
    let mut c2 = agent.client().await;
    let (del, r) = tokio::join!(
        c1.functions.delete_function(DeleteFunctionRequest {
            name: "moving".into(),
            force: false,
        }),
        c2.invocations.invoke(InvokeRequest {
            function_name: "moving".into(),
            payload: b"{}".to_vec(),
            ..Default::default()
        }),
    );
    del.expect("delete");
    if let Err(e) = r {
        check_race_error("invoke", &e, &agent.data_dir);
    }
}

/// The widest window of that race, made deterministic: the only start slot is held by
/// a slow cold start, so the invocation of `moving` has read its function and waits to
/// start while an update-code replaces (and collects) its code.
#[tokio::test]
async fn an_invocation_waiting_to_start_keeps_its_code_through_an_update() {
    let agent = TestAgent::start_args(
        300,
        &[
            "--pool-max",
            "0",
            "--parallel-starts",
            "1",
            "--start-queue-ms",
            "20000",
        ],
    )
    .await;
    let mut c = agent.client().await;
    let mut slow = python_function(
        "slowinit",
        "import time\ntime.sleep(2)\ndef handler(e, c):\n    return 'slow'\n",
    );
    slow.timeout_s = 10;
    c.functions.create_function(slow).await.unwrap();
    c.functions
        .create_function(python_function(
            "moving",
            "def handler(e, c):\n    return 'old'\n",
        ))
        .await
        .unwrap();
    let call = |name: &'static str| {
        let agent_sock = agent.socket.clone();
        tokio::spawn(async move {
            let mut c = flint_agent::client::connect(agent_sock.to_str().unwrap())
                .await
                .unwrap();
            c.invocations
                .invoke(InvokeRequest {
                    function_name: name.into(),
                    payload: b"{}".to_vec(),
                    ..Default::default()
                })
                .await
        })
    };
    let holder = call("slowinit");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let waiting = call("moving");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    c.functions
        .update_function_code(UpdateFunctionCodeRequest {
            name: "moving".into(),
            code_zip: zip_files(&[("app.py", "def handler(e, c):\n    return 'new'\n")]),
        })
        .await
        .expect("update-code");
    let r = waiting
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the waiting invocation failed: {e:?}"))
        .into_inner();
    assert_eq!(
        r.function_error,
        "",
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    assert_eq!(json(&r), "old", "it runs the code it was called with");
    assert_eq!(json(&holder.await.unwrap().unwrap().into_inner()), "slow");
    assert_eq!(json(&invoke(&mut c, "moving", "{}").await), "new");
}
