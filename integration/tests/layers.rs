//! Lambda layers (issue 13, item 6) through a real flintd with the namespace sandbox:
//! layer versions published, listed, read and deleted over gRPC and with the `flint`
//! CLI; a function's layers unpacked in order into a read-only /opt (a later layer's
//! file wins; a write gets EROFS), on a cold start and on a pool hit; a layer's module
//! importable from Python (/opt/python and its site-packages); at most 5 layers and
//! 250 MB of code plus layers, refused with Lambda's messages; a deleted version keeps
//! running for the function that names it and cannot be attached to another.

use flint_agent::client::Client;
use flint_integration::*;
use flint_proto::v1::*;
use std::process::{Command, Output};

const PY_APP: &str = r#"
import errno, os, sys
import shared, only_first, sitepkg
def handler(event, context):
    try:
        with open("/opt/python/new.py", "w") as f:
            f.write("x")
        write = "written"
    except OSError as e:
        write = errno.errorcode[e.errno]
    return {"who": shared.WHO, "first": only_first.X, "site": sitepkg.S, "write": write,
            "opt": sorted(os.listdir("/opt")), "path": [p for p in sys.path if p.startswith("/opt")]}
"#;

fn first_layer() -> Vec<u8> {
    zip_files(&[
        ("python/shared.py", "WHO = 'first'\n"),
        ("python/only_first.py", "X = 1\n"),
        (
            "python/lib/python3.11/site-packages/sitepkg.py",
            "S = 'site-packages'\n",
        ),
    ])
}

fn second_layer() -> Vec<u8> {
    zip_files(&[("python/shared.py", "WHO = 'second'\n")])
}

async fn publish(c: &Client, name: &str, zip: Vec<u8>) -> LayerVersion {
    c.layers()
        .publish_layer_version(PublishLayerVersionRequest {
            layer_name: name.into(),
            zip,
            description: format!("{name} for tests"),
            compatible_runtimes: vec!["python3.11".into()],
        })
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {e}"))
        .into_inner()
}

fn flint(agent: &TestAgent, args: &[&str]) -> Output {
    Command::new(binary("flint"))
        .arg("--endpoint")
        .arg(&agent.socket)
        .args(args)
        .output()
        .expect("run flint")
}

fn ok_stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "flint failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A zip (made by Debian's python3 zipfile: fast deflate of zeros) holding
/// `files` files of `mb` MB of zeros each under `dir`.
fn zeros_zip(path: &std::path::Path, dir: &str, files: u32, mb: u32) {
    let script = format!(
        "import zipfile\nz = zipfile.ZipFile({p:?}, 'w', zipfile.ZIP_DEFLATED)\n\
         for i in range({files}):\n    z.writestr('{dir}/zero%d.bin' % i, bytes({mb} << 20))\nz.close()\n",
        p = path.display().to_string()
    );
    let st = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .status()
        .expect("run /usr/bin/python3");
    assert!(st.success(), "making {} failed", path.display());
}

/// Waits (at most 20 s) for the python3.11 256 MB pool sandbox.
async fn wait_pool_ready(agent: &TestAgent) {
    let t0 = std::time::Instant::now();
    loop {
        let cap = agent.capacity().await;
        let ready = cap
            .pools
            .iter()
            .find(|p| p.runtime == "python3.11" && p.memory_mb == 256)
            .map_or(0, |p| p.ready);
        if ready >= 1 {
            return;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "the pool never had a sandbox ready: {cap:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn layers_are_published_listed_and_deleted_over_grpc() {
    let agent = TestAgent::start().await;
    let c = agent.client().await;
    let a1 = publish(&c, "deps", first_layer()).await;
    let a2 = publish(&c, "deps", second_layer()).await;
    let b1 = publish(&c, "other", second_layer()).await;
    assert_eq!((a1.version, a2.version, b1.version), (1, 2, 1));
    assert!(
        a2.layer_version_arn
            .starts_with("arn:aws:lambda:us-east-1:")
            && a2.layer_version_arn.ends_with(":layer:deps:2"),
        "{}",
        a2.layer_version_arn
    );
    assert_eq!(a2.layer_arn, a2.layer_version_arn.trim_end_matches(":2"));
    assert_eq!(a1.compatible_runtimes, ["python3.11"]);
    assert!(a1.unpacked_size > 0 && a1.code_size > 0 && a1.code_sha256.len() == 64);
    let mut lc = c.layers();
    let all = lc
        .list_layers(ListLayersRequest {})
        .await
        .unwrap()
        .into_inner()
        .layers;
    let latest: Vec<_> = all
        .iter()
        .map(|l| (l.layer_name.as_str(), l.version))
        .collect();
    assert_eq!(latest, [("deps", 2), ("other", 1)]);
    let versions = |name: &str| ListLayerVersionsRequest {
        layer_name: name.into(),
    };
    let got: Vec<u64> = lc
        .list_layer_versions(versions("deps"))
        .await
        .unwrap()
        .into_inner()
        .versions
        .iter()
        .map(|l| l.version)
        .collect();
    assert_eq!(got, [2, 1], "newest first");
    // The layer's ARN names it as well as its name does.
    let by_arn = lc
        .list_layer_versions(versions(&a1.layer_arn))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_arn.versions.len(), 2);
    let got = lc
        .get_layer_version(GetLayerVersionRequest {
            layer_name: "deps".into(),
            version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, a1);
    // Deleted: gone from the lists and NOT_FOUND; its number is never given again.
    lc.delete_layer_version(DeleteLayerVersionRequest {
        layer_name: "deps".into(),
        version: 2,
    })
    .await
    .unwrap();
    let e = lc
        .get_layer_version(GetLayerVersionRequest {
            layer_name: "deps".into(),
            version: 2,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    let latest = lc
        .list_layers(ListLayersRequest {})
        .await
        .unwrap()
        .into_inner()
        .layers;
    assert_eq!(latest[0].version, 1, "{latest:?}");
    assert_eq!(publish(&c, "deps", second_layer()).await.version, 3);
    let e = c
        .layers()
        .publish_layer_version(PublishLayerVersionRequest {
            layer_name: "bad/name".into(),
            zip: second_layer(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("layer name"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_imports_from_layers_in_order_under_a_read_only_opt() {
    let agent = TestAgent::start_args(300, &["--pool-warm", "python3.11:256=1"]).await;
    wait_pool_ready(&agent).await;
    let mut c = agent.client().await;
    let first = publish(&c, "first", first_layer()).await;
    let second = publish(&c, "second", second_layer()).await;
    let arns = vec![
        first.layer_version_arn.clone(),
        second.layer_version_arn.clone(),
    ];
    for (name, memory) in [("cold", 128), ("pooled", 256)] {
        let mut req = python_function(name, PY_APP);
        req.memory_mb = memory;
        req.layers = arns.clone();
        let f = c
            .functions
            .create_function(req)
            .await
            .expect("create")
            .into_inner();
        let got: Vec<_> = f.layers.iter().map(|l| l.arn.clone()).collect();
        assert_eq!(got, arns);
        assert_eq!(f.layers[0].code_size, first.code_size);
        let r = invoke_ok(&mut c, name, "{}").await;
        if name == "pooled" {
            assert!(r.timings.unwrap().pool_hit, "{name}: a pool hit expected");
        }
        let v = json(&r);
        assert_eq!(v["who"], "second", "{name}: the later layer wins: {v}");
        assert_eq!(v["first"], 1, "{v}");
        assert_eq!(v["site"], "site-packages", "{v}");
        assert_eq!(v["write"], "EROFS", "{name}: /opt is read-only: {v}");
        assert_eq!(v["opt"], serde_json::json!(["python"]), "{v}");
    }
    // Changing the layers retires the idle instance: the next call sees the new /opt.
    let f = c
        .functions
        .update_function_configuration(UpdateFunctionConfigurationRequest {
            name: "cold".into(),
            layers: Some(LayerList {
                arns: vec![
                    second.layer_version_arn.clone(),
                    first.layer_version_arn.clone(),
                ],
            }),
            ..Default::default()
        })
        .await
        .expect("update layers")
        .into_inner();
    assert_eq!(f.layers[0].arn, second.layer_version_arn);
    let v = json(&invoke_ok(&mut c, "cold", "{}").await);
    assert_eq!(v["who"], "first", "reordered layers: {v}");
    // A published version keeps its layers after $LATEST drops them.
    flint_proto::v1::versions_client::VersionsClient::new(c.channel.clone())
        .publish_version(PublishVersionRequest {
            function_name: "cold".into(),
            ..Default::default()
        })
        .await
        .expect("publish version");
    c.functions
        .update_function_configuration(UpdateFunctionConfigurationRequest {
            name: "cold".into(),
            layers: Some(LayerList { arns: vec![] }),
            ..Default::default()
        })
        .await
        .expect("clear layers");
    let r = invoke(&mut c, "cold", "{}").await;
    assert_eq!(r.function_error, "Unhandled", "no layers, no module");
    assert!(
        String::from_utf8_lossy(&r.payload).contains("No module named 'shared'"),
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    let v = json(&invoke_ok(&mut c, "cold:1", "{}").await);
    assert_eq!(v["who"], "first", "version 1 keeps its layers: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_version_keeps_running_but_cannot_be_attached() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let l = publish(&c, "gone", first_layer()).await;
    let mut req = python_function("keeps", PY_APP);
    req.layers = vec![l.layer_version_arn.clone(), "second-missing:1".into()];
    let e = c.functions.create_function(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("Layer version arn:aws:lambda:")
            && e.message()
                .contains(":layer:second-missing:1 does not exist"),
        "{e}"
    );
    let mut req = python_function("keeps", PY_APP);
    req.layers = vec![l.layer_version_arn.clone()];
    c.functions.create_function(req).await.expect("create");
    c.layers()
        .delete_layer_version(DeleteLayerVersionRequest {
            layer_name: "gone".into(),
            version: 1,
        })
        .await
        .expect("delete");
    // The idle instance, then a fresh one (after a config change) still get the layer.
    assert_eq!(
        json(&invoke_ok(&mut c, "keeps", "{}").await)["who"],
        "first"
    );
    c.functions
        .update_function_configuration(UpdateFunctionConfigurationRequest {
            name: "keeps".into(),
            memory_mb: Some(192),
            layers: Some(LayerList {
                arns: vec![l.layer_version_arn.clone()],
            }),
            ..Default::default()
        })
        .await
        .expect("a layer the function already names stays");
    let r = invoke_ok(&mut c, "keeps", "{}").await;
    assert!(
        r.timings.unwrap().cold_start,
        "the config change retired it"
    );
    assert_eq!(json(&r)["who"], "first");
    let mut req = python_function("new", PY_APP);
    req.layers = vec![l.layer_version_arn.clone()];
    let e = c.functions.create_function(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("does not exist"), "{e}");
    // The /opt tree and the deleted layer's zip go with the last function naming them.
    let unpacked = agent.data_dir.join("unpacked");
    let trees = || {
        std::fs::read_dir(&unpacked)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("opt-")
            })
            .count()
    };
    assert_eq!(trees(), 1, "the function's /opt tree on the host");
    let zips = || {
        let mut n = 0;
        for e in walk(&agent.data_dir) {
            if e.to_string_lossy().contains(&l.code_sha256) {
                n += 1;
            }
        }
        n
    };
    assert!(
        zips() > 0,
        "the deleted layer's zip is kept while a function names it"
    );
    c.functions
        .delete_function(DeleteFunctionRequest {
            name: "keeps".into(),
            ..Default::default()
        })
        .await
        .expect("delete");
    let t0 = std::time::Instant::now();
    while trees() > 0 || zips() > 0 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "the /opt tree ({}) or the layer's zip ({}) outlived the function",
            trees(),
            zips()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_five_layers_and_250_mb_with_the_code() {
    let agent = TestAgent::start().await;
    let c = agent.client().await;
    let mut arns = Vec::new();
    for i in 0..6 {
        arns.push(
            publish(&c, &format!("l{i}"), second_layer())
                .await
                .layer_version_arn,
        );
    }
    let mut req = python_function("six", "def handler(e, c):\n    return 1\n");
    req.layers = arns.clone();
    let e = c.functions.clone().create_function(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .contains("Member must have length less than or equal to 5"),
        "{e}"
    );
    let mut req = python_function("twice", "def handler(e, c):\n    return 1\n");
    req.layers = vec![arns[0].clone(), arns[0].clone()];
    let e = c.functions.clone().create_function(req).await.unwrap_err();
    assert!(e.message().contains("Two different versions"), "{e}");
    // 2 x 130 MB of layers: each fits, both with any code do not.
    let dir = tempfile::tempdir().unwrap();
    let mut big = Vec::new();
    for name in ["big-a", "big-b"] {
        let p = dir.path().join(format!("{name}.zip"));
        zeros_zip(&p, name, 1, 130);
        let zip = std::fs::read(&p).unwrap();
        big.push(publish(&c, name, zip).await);
    }
    assert_eq!(big[0].unpacked_size, 130 << 20);
    let mut req = python_function("big", "def handler(e, c):\n    return 1\n");
    req.layers = vec![big[0].layer_version_arn.clone()];
    c.functions
        .clone()
        .create_function(req.clone())
        .await
        .expect("one big layer fits");
    req.name = "too-big".into();
    req.layers.push(big[1].layer_version_arn.clone());
    let e = c.functions.clone().create_function(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains(
            "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes"
        ),
        "{e}"
    );
    let e = c
        .functions
        .clone()
        .update_function_configuration(UpdateFunctionConfigurationRequest {
            name: "big".into(),
            layers: Some(LayerList {
                arns: vec![
                    big[0].layer_version_arn.clone(),
                    big[1].layer_version_arn.clone(),
                ],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("The actual size is"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_publishes_lists_attaches_and_deletes_layers() {
    let agent = TestAgent::start().await;
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    std::fs::create_dir_all(layer.join("python")).unwrap();
    std::fs::write(layer.join("python/shared.py"), "WHO = 'cli'\n").unwrap();
    std::fs::write(layer.join("python/only_first.py"), "X = 2\n").unwrap();
    let site = layer.join("python/lib/python3.11/site-packages");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("sitepkg.py"), "S = 'cli'\n").unwrap();
    let out = ok_stdout(&flint(
        &agent,
        &[
            "--json",
            "layers",
            "publish",
            "clilayer",
            "--zip",
            layer.to_str().unwrap(),
            "--description",
            "from a directory",
            "--compatible-runtime",
            "python3.11",
            "--compatible-runtime",
            "python3.12",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["description"], "from a directory");
    assert_eq!(
        v["compatible_runtimes"],
        serde_json::json!(["python3.11", "python3.12"])
    );
    let arn = v["layer_version_arn"].as_str().unwrap().to_string();
    let ls = ok_stdout(&flint(&agent, &["layers", "ls"]));
    assert!(ls.contains("clilayer") && ls.contains(&arn), "{ls}");
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("app.py"), PY_APP).unwrap();
    let out = ok_stdout(&flint(
        &agent,
        &[
            "create",
            "clif",
            "--runtime",
            "python3.11",
            "--handler",
            "app.handler",
            "--code",
            code.to_str().unwrap(),
            "--layer",
            "clilayer:1",
        ],
    ));
    assert!(out.contains(&format!("layer:         {arn}")), "{out}");
    let out = ok_stdout(&flint(&agent, &["invoke", "clif"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["who"], "cli", "{out}");
    ok_stdout(&flint(&agent, &["layers", "rm", "clilayer", "1"]));
    let versions = ok_stdout(&flint(
        &agent,
        &["--json", "layers", "versions", "clilayer"],
    ));
    assert_eq!(versions.trim(), "[]");
    let o = flint(&agent, &["update-config", "clif", "--clear-layers"]);
    ok_stdout(&o);
    let o = flint(&agent, &["update-config", "clif", "--layer", &arn]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

const GREETING_JAVA: &str = r#"package layerlib;
public final class Greeting {
    public static String hello() { return "java-layer"; }
}
"#;

const USES_LAYER_JAVA: &str = r#"package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;
public class UsesLayer implements RequestHandler<Map<String, Object>, String> {
    public String handleRequest(Map<String, Object> event, Context context) {
        return layerlib.Greeting.hello();
    }
}
"#;

const GEMSPEC: &str = r#"Gem::Specification.new do |s|
  s.name = "gemmy"
  s.version = "1.0"
  s.summary = "a gem from a layer"
  s.authors = ["flint"]
  s.files = ["lib/gemmy.rb"]
  s.require_paths = ["lib"]
end
"#;

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (openjdk-17-jdk-headless: images/host-deps.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A zip of raw files (path, bytes).
fn zip_bytes(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().unix_permissions(0o644),
        )
        .unwrap();
        w.write_all(body).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// The layer (java/lib/greeting.jar) and the function (example/UsesLayer.class),
/// compiled with the host's javac against the image's runtime.jar and the layer's jar.
fn java_layer_and_code() -> (Vec<u8>, Vec<u8>) {
    let api_jar = images_dir().join("java17/rootfs/var/runtime/runtime.jar");
    assert!(api_jar.is_file(), "{} missing", api_jar.display());
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("layerlib")).unwrap();
    std::fs::create_dir_all(src.join("example")).unwrap();
    std::fs::write(src.join("layerlib/Greeting.java"), GREETING_JAVA).unwrap();
    std::fs::write(src.join("example/UsesLayer.java"), USES_LAYER_JAVA).unwrap();
    let lib_classes = t.path().join("libclasses");
    run_ok(
        Command::new("javac")
            .args(["--release", "17", "-d"])
            .arg(&lib_classes)
            .arg(src.join("layerlib/Greeting.java")),
    );
    let jar = t.path().join("greeting.jar");
    run_ok(
        Command::new("jar")
            .arg("--create")
            .arg("--file")
            .arg(&jar)
            .arg("-C")
            .arg(&lib_classes)
            .arg("."),
    );
    let classes = t.path().join("classes");
    let cp = format!("{}:{}", api_jar.display(), jar.display());
    run_ok(
        Command::new("javac")
            .args(["--release", "17", "-cp", &cp, "-d"])
            .arg(&classes)
            .arg(src.join("example/UsesLayer.java")),
    );
    let layer = zip_bytes(&[("java/lib/greeting.jar", std::fs::read(&jar).unwrap())]);
    let code = zip_bytes(&[(
        "example/UsesLayer.class",
        std::fs::read(classes.join("example/UsesLayer.class")).unwrap(),
    )]);
    (layer, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_ruby_and_java_load_modules_from_their_layer_paths() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let node = publish(
        &c,
        "node-mods",
        zip_files(&[
            (
                "nodejs/node_modules/greet/index.js",
                "module.exports = { hello: () => 'node-layer' };\n",
            ),
            (
                "nodejs/node18/node_modules/greet18/index.js",
                "module.exports = { hello: () => 'node18-layer' };\n",
            ),
        ]),
    )
    .await;
    let ruby = publish(
        &c,
        "ruby-libs",
        zip_files(&[
            (
                "ruby/lib/greet.rb",
                "module Greet\n  def self.hello\n    'ruby-layer'\n  end\nend\n",
            ),
            (
                "ruby/gems/3.2.0/gems/gemmy-1.0/lib/gemmy.rb",
                "module Gemmy\n  HELLO = 'ruby-gem-layer'\nend\n",
            ),
            ("ruby/gems/3.2.0/specifications/gemmy-1.0.gemspec", GEMSPEC),
        ]),
    )
    .await;
    let (java_layer, java_code) = java_layer_and_code();
    let java = publish(&c, "java-libs", java_layer).await;
    let create = |name: &str, runtime: &str, handler: &str, code: Vec<u8>, layer: &str| {
        CreateFunctionRequest {
            name: name.into(),
            runtime: runtime.into(),
            handler: handler.into(),
            memory_mb: 256,
            timeout_s: 15,
            code_zip: code,
            layers: vec![layer.to_string()],
            ..Default::default()
        }
    };
    let reqs = [
        create(
            "node-fn",
            "nodejs18.x",
            "index.handler",
            zip_files(&[(
                "index.js",
                "const g = require('greet'), g18 = require('greet18');\n\
                 exports.handler = async () => [g.hello(), g18.hello()];\n",
            )]),
            &node.layer_version_arn,
        ),
        create(
            "ruby-fn",
            "ruby3.2",
            "app.handler",
            zip_files(&[(
                "app.rb",
                "require 'greet'\nrequire 'gemmy'\n\
                 def handler(event:, context:)\n  [Greet.hello, Gemmy::HELLO]\nend\n",
            )]),
            &ruby.layer_version_arn,
        ),
        create(
            "java-fn",
            "java17",
            "example.UsesLayer::handleRequest",
            java_code,
            &java.layer_version_arn,
        ),
    ];
    for req in reqs {
        c.functions
            .create_function(req)
            .await
            .expect("create with a layer");
    }
    let v = json(&invoke_ok(&mut c, "node-fn", "{}").await);
    assert_eq!(v, serde_json::json!(["node-layer", "node18-layer"]));
    let v = json(&invoke_ok(&mut c, "ruby-fn", "{}").await);
    assert_eq!(v, serde_json::json!(["ruby-layer", "ruby-gem-layer"]));
    let v = json(&invoke_ok(&mut c, "java-fn", "{}").await);
    assert_eq!(v, "java-layer");
}

/// Lambda's layer operations and a function's `Layers` with boto3 (Debian's
/// python3-boto3), signed with a `flint keys create` key.
const BOTO3_SCRIPT: &str = r#"
import io, json, os, zipfile, boto3, botocore
from botocore.config import Config
c = boto3.client("lambda", endpoint_url=os.environ["EP"], region_name="us-east-1",
                 aws_access_key_id=os.environ["K"], aws_secret_access_key=os.environ["S"],
                 config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))
def zipped(files):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, body in files.items():
            z.writestr(name, body)
    return b.getvalue()
p1 = c.publish_layer_version(LayerName="boto", Description="one",
                             Content={"ZipFile": zipped({"python/boto_layer.py": "WHO = 'v1'\n"})},
                             CompatibleRuntimes=["python3.11"])
p2 = c.publish_layer_version(LayerName="boto",
                             Content={"ZipFile": zipped({"python/boto_layer.py": "WHO = 'v2'\n"})})
print("published", p1["Version"], p2["Version"], p1["LayerVersionArn"], p1["LayerArn"],
      p1["Content"]["CodeSize"] > 0, p1["Description"], p1["CompatibleRuntimes"])
layers = c.list_layers()["Layers"]
print("layers", [(l["LayerName"], l["LatestMatchingVersion"]["Version"]) for l in layers])
print("python layers", [l["LayerName"] for l in c.list_layers(CompatibleRuntime="python3.11")["Layers"]])
print("versions", [v["Version"] for v in c.list_layer_versions(LayerName="boto")["LayerVersions"]])
g = c.get_layer_version(LayerName="boto", VersionNumber=1)
print("get", g["Version"], g["Description"], g["Content"]["CodeSha256"] == p1["Content"]["CodeSha256"])
print("by arn", c.get_layer_version_by_arn(Arn=p2["LayerVersionArn"])["Version"])
app = zipped({"app.py": "import boto_layer\ndef handler(e, c):\n    return boto_layer.WHO\n"})
f = c.create_function(FunctionName="boto-fn", Runtime="python3.11", Role="arn:aws:iam::000000000000:role/r",
                      Handler="app.handler", Code={"ZipFile": app}, Layers=[p2["LayerVersionArn"]])
print("created", [(l["Arn"], l["CodeSize"] > 0) for l in f["Layers"]])
out = c.invoke(FunctionName="boto-fn")
print("invoked", json.loads(out["Payload"].read()))
u = c.update_function_configuration(FunctionName="boto-fn", Layers=[p1["LayerVersionArn"]])
print("updated", [l["Arn"] for l in u["Layers"]])
print("get function", [l["Arn"] for l in c.get_function(FunctionName="boto-fn")["Configuration"]["Layers"]])
c.delete_layer_version(LayerName="boto", VersionNumber=2)
print("after delete", [v["Version"] for v in c.list_layer_versions(LayerName="boto")["LayerVersions"]])
for call in (lambda: c.get_layer_version(LayerName="boto", VersionNumber=2),
             lambda: c.update_function_configuration(FunctionName="boto-fn", Layers=[p2["LayerVersionArn"]]),
             lambda: c.update_function_configuration(FunctionName="boto-fn", Layers=[p1["LayerVersionArn"]] * 6)):
    try:
        call()
        print("accepted")
    except botocore.exceptions.ClientError as e:
        print("refused", e.response["Error"]["Code"], e.response["Error"]["Message"])
c.publish_layer_version(LayerName="boto", Content={"ZipFile": zipped({"python/x.py": "X = 3\n"})})
pager = c.get_paginator("list_layer_versions")
print("pages", [[v["Version"] for v in p["LayerVersions"]]
                for p in pager.paginate(LayerName="boto", PaginationConfig={"PageSize": 1})])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boto3_publishes_lists_gets_deletes_and_attaches_layers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let agent = TestAgent::start_args(300, &["--api-listen", &addr]).await;
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "no REST listener"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = Command::new(binary("flint"))
        .args(["--json", "keys", "create", "--description", "tests"])
        .arg("--data-dir")
        .arg(&agent.data_dir)
        .output()
        .expect("run flint keys create");
    let key: serde_json::Value = serde_json::from_str(&ok_stdout(&out)).unwrap();
    // CreateFunction names an execution role, as Lambda requires.
    ok_stdout(&flint(&agent, &["roles", "create", "r"]));
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", BOTO3_SCRIPT])
        .env("EP", format!("http://{addr}"))
        .env("K", key["access_key_id"].as_str().unwrap())
        .env("S", key["secret_access_key"].as_str().unwrap())
        .env("AWS_CONFIG_FILE", "/nonexistent");
    let out = flint_integration::client_run::run_within(cmd, std::time::Duration::from_secs(60));
    let stdout = ok_stdout(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    let arn = |v: u32| format!("arn:aws:lambda:us-east-1:000000000000:layer:boto:{v}");
    assert_eq!(
        lines[0],
        format!(
            "published 1 2 {} {} True one ['python3.11']",
            arn(1),
            arn(1).trim_end_matches(":1")
        ),
        "{stdout}"
    );
    assert_eq!(lines[1], "layers [('boto', 2)]", "{stdout}");
    assert_eq!(lines[2], "python layers []", "{stdout}");
    assert_eq!(lines[3], "versions [2, 1]", "{stdout}");
    assert_eq!(lines[4], "get 1 one True", "{stdout}");
    assert_eq!(lines[5], "by arn 2", "{stdout}");
    assert_eq!(
        lines[6],
        format!("created [('{}', True)]", arn(2)),
        "{stdout}"
    );
    assert_eq!(lines[7], "invoked v2", "{stdout}");
    assert_eq!(lines[8], format!("updated ['{}']", arn(1)), "{stdout}");
    assert_eq!(lines[9], format!("get function ['{}']", arn(1)), "{stdout}");
    assert_eq!(lines[10], "after delete [1]", "{stdout}");
    assert!(
        lines[11].starts_with("refused ResourceNotFoundException"),
        "{stdout}"
    );
    assert!(
        lines[12].starts_with("refused InvalidParameterValueException")
            && lines[12].contains(&format!("Layer version {} does not exist", arn(2))),
        "{stdout}"
    );
    assert!(
        lines[13].starts_with("refused InvalidParameterValueException")
            && lines[13].contains("less than or equal to 5"),
        "{stdout}"
    );
    // boto3's paginator follows NextMarker (one version per page, newest first).
    assert_eq!(lines[14], "pages [[3], [1]]", "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_microvm_backend_takes_a_function_with_layers() {
    // The microVM gets its layers as zips that flint-init unpacks into /opt
    // (docs/LAYERS.md); invoking needs a guest that reaches user space, which this
    // host cannot run (the fake-backend and flint-init tests cover the rest).
    let agent = TestAgent::start_args(300, &["--sandbox", "microvm", "--pool-max", "0"]).await;
    let c = agent.client().await;
    let l = publish(&c, "vmlayer", second_layer()).await;
    let mut req = python_function("vmfn", "def handler(e, c):\n    return 1\n");
    req.layers = vec![l.layer_version_arn.clone()];
    let f = c
        .functions
        .clone()
        .create_function(req)
        .await
        .expect("a function with layers is accepted on the microVM backend")
        .into_inner();
    let arns: Vec<_> = f.layers.iter().map(|l| l.arn.as_str()).collect();
    assert_eq!(arns, [l.layer_version_arn.as_str()]);
}
