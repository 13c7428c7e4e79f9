//! Layer names and ARNs: `arn:aws:lambda:REGION:ACCOUNT:layer:NAME[:VERSION]`, with
//! the region and account the agent uses for function ARNs. Pure functions.

use super::LayerError;

/// Longest layer name Lambda accepts.
pub const NAME_MAX: usize = 140;

/// The ARN of a layer (no version: Lambda's `LayerArn`).
pub fn layer_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:layer:{name}")
}

/// The ARN of one layer version (Lambda's `LayerVersionArn`).
pub fn version_arn(region: &str, account: &str, name: &str, version: u64) -> String {
    format!("{}:{version}", layer_arn(region, account, name))
}

/// Checks a layer name: 1-140 characters of `[A-Za-z0-9_-]`.
pub fn check_name(name: &str) -> Result<(), LayerError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(LayerError::InvalidName(name.to_string()))
    }
}

/// A layer as a request names it: a layer ARN or a bare name (ListLayerVersions and
/// the REST paths accept both); an ARN must be of this agent's region and account.
pub fn parse_layer(given: &str, region: &str, account: &str) -> Result<String, LayerError> {
    let name = match given.strip_prefix("arn:") {
        None => given,
        Some(_) => {
            let prefix = format!("arn:aws:lambda:{region}:{account}:layer:");
            given
                .strip_prefix(&prefix)
                .filter(|n| !n.contains(':'))
                .ok_or_else(|| LayerError::BadArn(given.to_string()))?
        }
    };
    check_name(name)?;
    Ok(name.to_string())
}

/// The layer and version a layer version ARN names. `NAME:VERSION` is accepted too
/// (the CLI's short form); an ARN must be of this agent's region and account.
pub fn parse_version_arn(
    given: &str,
    region: &str,
    account: &str,
) -> Result<(String, u64), LayerError> {
    let bad = || LayerError::BadArn(given.to_string());
    let rest = if given.starts_with("arn:") {
        let prefix = format!("arn:aws:lambda:{region}:{account}:layer:");
        given.strip_prefix(&prefix).ok_or_else(bad)?
    } else {
        given
    };
    let (name, version) = rest.rsplit_once(':').ok_or_else(bad)?;
    let version: u64 = version
        .parse()
        .ok()
        .filter(|v| *v > 0 && !version.starts_with('0'))
        .ok_or_else(bad)?;
    check_name(name).map_err(|_| bad())?;
    Ok((name.to_string(), version))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "us-east-1";
    const A: &str = "123456789012";

    #[test]
    fn version_arns_round_trip() {
        let arn = version_arn(R, A, "deps", 3);
        assert_eq!(arn, "arn:aws:lambda:us-east-1:123456789012:layer:deps:3");
        assert_eq!(parse_version_arn(&arn, R, A).unwrap(), ("deps".into(), 3));
        assert_eq!(
            parse_version_arn("deps:12", R, A).unwrap(),
            ("deps".into(), 12)
        );
    }

    #[test]
    fn refuses_other_regions_accounts_and_malformed_versions() {
        for bad in [
            "arn:aws:lambda:eu-west-1:123456789012:layer:deps:3",
            "arn:aws:lambda:us-east-1:999999999999:layer:deps:3",
            "arn:aws:lambda:us-east-1:123456789012:layer:deps",
            "arn:aws:lambda:us-east-1:123456789012:function:deps:3",
            "deps",
            "deps:0",
            "deps:01",
            "deps:x",
            "de/ps:1",
            ":1",
        ] {
            let e = parse_version_arn(bad, R, A).unwrap_err();
            assert!(
                matches!(&e, LayerError::BadArn(g) if g == bad),
                "{bad}: {e:?}"
            );
            assert!(e.to_string().contains("layer:NAME:VERSION"), "{e}");
        }
    }

    #[test]
    fn names_and_layer_arns() {
        assert!(check_name("my_layer-1").is_ok());
        assert!(check_name("").is_err() && check_name("a.b").is_err());
        assert!(check_name(&"x".repeat(141)).is_err());
        assert_eq!(parse_layer("deps", R, A).unwrap(), "deps");
        assert_eq!(parse_layer(&layer_arn(R, A, "deps"), R, A).unwrap(), "deps");
        assert!(parse_layer(&version_arn(R, A, "deps", 1), R, A).is_err());
    }
}
