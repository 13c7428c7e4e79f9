//! Lambda's JSON shapes: the request bodies this API reads and the
//! `FunctionConfiguration` it answers with.

use super::names::{Place, LATEST};
use crate::store::Function;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The IAM role ARN reported for a function: its execution role, or a placeholder
/// for a function without one.
pub fn role(place: &Place, f: &Function) -> String {
    crate::roles::role_arn(
        &place.account,
        f.role.as_deref().unwrap_or("flint-function"),
    )
}

/// `Environment` of requests and responses.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    #[serde(default)]
    pub variables: HashMap<String, String>,
}

/// `Code` of CreateFunction.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionCode {
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    pub image_uri: Option<String>,
}

/// CreateFunction's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunction {
    pub function_name: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    #[serde(default)]
    pub code: FunctionCode,
    #[serde(default)]
    pub description: String,
    pub timeout: Option<u32>,
    pub memory_size: Option<u32>,
    /// Flint's extension: "none" or "outbound" (docs/NETWORK.md); absent: flintd's
    /// `--network-default`.
    pub flint_network: Option<String>,
    pub environment: Option<Environment>,
    /// The execution role: arn:aws:iam::ACCOUNT:role/NAME (or NAME), a Flint role.
    pub role: Option<String>,
    #[serde(default)]
    pub publish: bool,
    pub package_type: Option<String>,
    pub architectures: Option<Vec<String>>,
    /// Kept as the dead-letter target of the event invoke configuration.
    pub dead_letter_config: Option<super::dead_letter::DeadLetterConfig>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// Layer version ARNs, in order.
    pub layers: Option<Vec<String>>,
}

/// `EphemeralStorage`: the /tmp size in MB.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    pub size: u32,
}

impl EphemeralStorage {
    /// The size, checked as Lambda checks it.
    pub fn checked(o: Option<Self>) -> Result<Option<u32>, super::errors::ApiError> {
        use crate::limits::{TMP_MAX_MB, TMP_MB};
        let Some(EphemeralStorage { size }) = o else {
            return Ok(None);
        };
        let bound = if size < TMP_MB {
            format!("greater than or equal to {TMP_MB}")
        } else if size > TMP_MAX_MB {
            format!("less than or equal to {TMP_MAX_MB}")
        } else {
            return Ok(Some(size));
        };
        Err(super::errors::ApiError::invalid(format!(
            "1 validation error detected: Value '{size}' at 'ephemeralStorage.size' failed to \
             satisfy constraint: Member must have value {bound}"
        )))
    }
}

/// UpdateFunctionCode's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCode {
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    pub image_uri: Option<String>,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub dry_run: bool,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// UpdateFunctionConfiguration's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfig {
    /// Flint's extension: "none" or "outbound"; absent: unchanged.
    pub flint_network: Option<String>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<u32>,
    pub memory_size: Option<u32>,
    pub environment: Option<Environment>,
    pub role: Option<String>,
    pub revision_id: Option<String>,
    /// Kept as the dead-letter target of the event invoke configuration.
    pub dead_letter_config: Option<super::dead_letter::DeadLetterConfig>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// Replaces the layer list (version ARNs, in order).
    pub layers: Option<Vec<String>>,
}

/// PutFunctionConcurrency's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutConcurrency {
    pub reserved_concurrent_executions: u32,
}

/// Lambda's `LastModified`: `2026-12-06T04:52:55.123+0000`.
pub(super) fn last_modified(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(s) => format!("{s}+0000"),
        None => rfc3339.to_string(),
    }
}

/// Lambda's `CodeSha256` is the base64 of the digest (Flint stores it in hex).
pub fn code_sha256_b64(hex_digest: &str) -> String {
    use base64::Engine;
    match hex::decode(hex_digest) {
        Ok(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Err(_) => hex_digest.to_string(),
    }
}

/// The function's `RevisionId`: changes on every change of the function.
pub fn revision_id(f: &Function) -> String {
    format!(
        "{:08x}-0000-4000-8000-{}",
        f.revision,
        &format!("{:0>12}", f.code_sha256)[..12]
    )
}

/// `FunctionConfiguration` of `$LATEST`.
pub fn configuration(f: &Function, place: &Place) -> Value {
    json!({
        "FunctionName": f.name,
        "FunctionArn": place.arn(&f.name),
        "Runtime": f.runtime,
        "Role": role(place, f),
        "Handler": f.handler,
        "CodeSize": f.code_size,
        "Description": f.description,
        "Timeout": f.timeout_s,
        "MemorySize": f.memory_mb,
        "LastModified": last_modified(&f.last_modified),
        "CodeSha256": code_sha256_b64(&f.code_sha256),
        "Version": LATEST,
        "Environment": {"Variables": f.environment},
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": revision_id(f),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": f.ephemeral_storage_mb},
        "FlintNetwork": f.network.as_str(),
        "Layers": f.layers.iter().map(|l| json!({
            "Arn": crate::layers::arn::version_arn(&place.region, &place.account, &l.name, l.version),
            "CodeSize": l.code_size,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_has_lambdas_members_and_forms() {
        let f = Function {
            name: "f".into(),
            runtime: "python3.11".into(),
            handler: "app.handler".into(),
            memory_mb: 256,
            timeout_s: 9,
            environment: HashMap::from([("A".into(), "1".into())]),
            description: "d".into(),
            code_sha256: "00".repeat(32),
            code_size: 42,
            last_modified: "2026-12-06T04:52:55.123Z".into(),
            revision: 3,
            reserved_concurrency: None,
            network: crate::sandbox::NetworkMode::None,
            role: None,
            secret_environment: Default::default(),
            ephemeral_storage_mb: 2048,
            layers: Vec::new(),
        };
        let place = Place {
            region: "us-east-1".into(),
            account: "000000000000".into(),
        };
        let c = configuration(&f, &place);
        assert_eq!(c["FlintNetwork"], "none");
        assert_eq!(
            c["FunctionArn"],
            "arn:aws:lambda:us-east-1:000000000000:function:f"
        );
        assert_eq!(c["LastModified"], "2026-12-06T04:52:55.123+0000");
        assert_eq!(
            c["CodeSha256"],
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
        assert_eq!(c["MemorySize"], 256);
        assert_eq!(c["EphemeralStorage"]["Size"], 2048);
        assert_eq!(c["Environment"]["Variables"]["A"], "1");
        assert_eq!(c["Version"], "$LATEST");
        let created: CreateFunction = serde_json::from_value(json!({
            "FunctionName": "f", "Runtime": "python3.11", "Role": "r", "Handler": "h",
            "Code": {"ZipFile": "UEs="}, "MemorySize": 128, "Tags": {"a": "b"}
        }))
        .unwrap();
        assert_eq!(created.code.zip_file.as_deref(), Some("UEs="));
        assert_eq!(created.memory_size, Some(128));
        let sized = |n: u32| EphemeralStorage::checked(Some(EphemeralStorage { size: n }));
        assert_eq!(sized(1024).unwrap(), Some(1024));
        assert_eq!(EphemeralStorage::checked(None).unwrap(), None);
        for (n, bound) in [
            (511, "greater than or equal to 512"),
            (10241, "less than or equal to 10240"),
        ] {
            let e = format!("{:?}", sized(n).unwrap_err());
            assert!(
                e.contains("InvalidParameterValueException") && e.contains(bound),
                "{e}"
            );
        }
    }
}
