//! The `flint` command-line client against a real flintd: every subcommand, text and
//! JSON output, and non-zero exits carrying the server's message.

use flint_integration::*;
use std::process::{Command, Output};

fn flint(agent: &TestAgent, args: &[&str]) -> Output {
    Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(args)
        .output()
        .expect("run flint")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn cli_manages_and_invokes_functions() {
    let agent = TestAgent::start().await;
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("app.py"),
        "import os\ndef handler(event, context):\n    print('log line from handler')\n    return {'sum': event['a'] + event['b'], 'mode': os.environ.get('MODE')}\n",
    )
    .unwrap();
    let dir = code.path().to_str().unwrap();

    let o = flint(
        &agent,
        &[
            "create",
            "adder",
            "--runtime",
            "python3.11",
            "--handler",
            "app.handler",
            "--code",
            dir,
            "--memory",
            "256",
            "--timeout",
            "5",
            "--env",
            "MODE=test",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("memory:        256 MB"),
        "{}",
        stdout(&o)
    );

    // Without --memory and --timeout the agent's defaults apply (the CLI sends 0).
    let o = flint(
        &agent,
        &[
            "--json",
            "create",
            "defaults",
            "--runtime",
            "python3.11",
            "--handler",
            "app.handler",
            "--code",
            dir,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["memory_mb"].as_u64(), v["timeout_s"].as_u64()),
        (Some(128), Some(3)),
        "{v}"
    );
    assert!(flint(&agent, &["rm", "defaults"]).status.success());

    let o = flint(
        &agent,
        &[
            "invoke",
            "adder",
            "--payload",
            r#"{"a": 2, "b": 40}"#,
            "--log",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["sum"], 42);
    assert_eq!(v["mode"], "test");
    assert!(
        stderr(&o).contains("log line from handler"),
        "{}",
        stderr(&o)
    );

    let o = flint(
        &agent,
        &[
            "--json",
            "invoke",
            "adder",
            "--payload",
            r#"{"a": 1, "b": 1}"#,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["status_code"], 200);
    assert_eq!(v["payload"], r#"{"sum": 2, "mode": "test"}"#);

    let o = flint(
        &agent,
        &[
            "update-config",
            "adder",
            "--memory",
            "512",
            "--env",
            "MODE=prod",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = flint(&agent, &["--json", "get", "adder"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["memory_mb"], 512);
    assert_eq!(v["environment"]["MODE"], "prod");
    assert_eq!(v["revision"], 2);

    std::fs::write(
        code.path().join("app.py"),
        "def handler(e, c):\n    return 'v2'\n",
    )
    .unwrap();
    let o = flint(&agent, &["update-code", "adder", "--code", dir]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = flint(&agent, &["invoke", "adder"]);
    assert_eq!(stdout(&o).trim(), "\"v2\"");

    let o = flint(&agent, &["invoke", "adder", "--async"]);
    assert!(
        o.status.success() && stdout(&o).contains("queued"),
        "{}",
        stdout(&o)
    );
    let o = flint(&agent, &["invoke", "adder", "--dry-run"]);
    assert!(
        o.status.success() && stdout(&o).contains("dry run ok"),
        "{}",
        stdout(&o)
    );

    let o = flint(&agent, &["--json", "ls"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let o = flint(&agent, &["ls"]);
    assert!(
        stdout(&o).lines().any(|l| l.starts_with("adder")),
        "{}",
        stdout(&o)
    );

    let o = flint(&agent, &["rm", "adder"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = flint(&agent, &["get", "adder"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("function adder not found"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn cli_reports_errors_with_non_zero_exit() {
    let agent = TestAgent::start().await;
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("app.py"),
        "def handler(e, c):\n    raise RuntimeError('nope')\n",
    )
    .unwrap();
    let dir = code.path().to_str().unwrap();
    let o = flint(
        &agent,
        &[
            "create",
            "x",
            "--runtime",
            "python3.11",
            "--handler",
            "app.handler",
            "--code",
            dir,
            "--memory",
            "64",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("128-10240 MB"), "{}", stderr(&o));
    let o = flint(
        &agent,
        &[
            "create",
            "x",
            "--runtime",
            "python3.11",
            "--handler",
            "app.handler",
            "--code",
            dir,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = flint(&agent, &["invoke", "x", "--payload", "not json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not valid JSON"), "{}", stderr(&o));
    let o = flint(&agent, &["invoke", "x"]);
    assert_eq!(o.status.code(), Some(2), "a function error exits 2");
    assert!(stdout(&o).contains("RuntimeError"), "{}", stdout(&o));
    let o = Command::new(binary("flint"))
        .args(["--endpoint", "/nonexistent/flintd.sock", "ls"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is flintd running?"), "{}", stderr(&o));
}
