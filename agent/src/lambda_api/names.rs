//! Function names as Lambda accepts them: `NAME`, `ACCOUNT:function:NAME` or
//! `arn:aws:lambda:REGION:ACCOUNT:function:NAME`, each optionally with `:QUALIFIER`;
//! and the ARNs this endpoint gives out.

use super::errors::ApiError;

/// The qualifier of a function's mutable configuration.
pub const LATEST: &str = "$LATEST";

/// Where this endpoint says it is: the region and account id of its ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub region: String,
    pub account: String,
}

impl Place {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
    pub fn arn(&self, name: &str) -> String {
        crate::functions::arn_in(&self.region, &self.account, name)
    }

    /// A function reference split into its name and qualifier; an ARN of another
    /// region or account is not found here.
    pub fn resolve(&self, given: &str) -> Result<(String, Option<String>), ApiError> {
        let parts: Vec<&str> = given.split(':').collect();
        let (account, region, rest): (Option<&str>, Option<&str>, &[&str]) = match parts[..] {
            ["arn", partition, "lambda", region, account, "function", ..] => {
                if partition != "aws" {
                    return Err(ApiError::invalid(format!(
                        "{given}: the ARN partition must be aws"
                    )));
                }
                (Some(account), Some(region), &parts[6..])
            }
            [account, "function", ..] => (Some(account), None, &parts[2..]),
            [..] if parts.first() == Some(&"arn") => {
                return Err(ApiError::invalid(format!(
                    "{given} is not a function ARN: use arn:aws:lambda:{}:{}:function:NAME",
                    self.region, self.account
                )))
            }
            _ => (None, None, &parts[..]),
        };
        let (name, qualifier) = match rest {
            [name] => (*name, None),
            [name, q] => (*name, Some(q.to_string())),
            _ => {
                return Err(ApiError::invalid(format!(
                    "{given:?} is not a function name: use NAME, ACCOUNT:function:NAME or arn:aws:lambda:REGION:ACCOUNT:function:NAME, optionally followed by :QUALIFIER"
                )))
            }
        };
        if name.is_empty() {
            return Err(ApiError::invalid(format!("{given:?} names no function")));
        }
        if account.is_some_and(|a| a != self.account) || region.is_some_and(|r| r != self.region) {
            return Err(ApiError::not_found(format!(
                "Function not found: {given} (this endpoint serves region {} and account {})",
                self.region, self.account
            )));
        }
        Ok((name.to_string(), qualifier))
    }

    /// Resolves `given` with the request's `Qualifier` parameter (a version, an
    /// alias or `$LATEST`); when both name one, they must agree.
    pub fn resolve_qualified(
        &self,
        given: &str,
        param: Option<&str>,
    ) -> Result<(String, Option<String>), ApiError> {
        let (name, q) = self.resolve(given)?;
        let q = match (q.as_deref(), param.filter(|p| !p.is_empty())) {
            (Some(a), Some(b)) if a != b => {
                return Err(ApiError::invalid(format!(
                    "the qualifier in the function name ({a}) differs from the Qualifier parameter ({b})"
                )))
            }
            (Some(a), _) => Some(a.to_string()),
            (None, b) => b.map(str::to_string),
        };
        Ok((name, q))
    }

    /// Resolves `given` for an operation on `$LATEST` only (UpdateFunctionCode,
    /// PublishVersion, ...): any other qualifier is refused.
    pub fn resolve_latest(&self, given: &str, param: Option<&str>) -> Result<String, ApiError> {
        let (name, q) = self.resolve_qualified(given, param)?;
        match q.as_deref() {
            None | Some(LATEST) => Ok(name),
            Some(q) => Err(ApiError::invalid(format!(
                "{}:{q}: this operation acts on the function ($LATEST) only; omit the qualifier",
                self.arn(&name)
            ))),
        }
    }

    /// `NAME:QUALIFIER` for the invocation path (`NAME` without a qualifier).
    pub fn invocation_name(&self, given: &str, param: Option<&str>) -> Result<String, ApiError> {
        Ok(match self.resolve_qualified(given, param)? {
            (name, Some(q)) => format!("{name}:{q}"),
            (name, None) => name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> Place {
        Place {
            region: "eu-west-3".into(),
            account: "123456789012".into(),
        }
    }

    #[test]
    fn names_partial_and_full_arns_resolve() {
        let p = here();
        assert_eq!(p.resolve("f").unwrap(), ("f".into(), None));
        assert_eq!(
            p.resolve("f:$LATEST").unwrap(),
            ("f".into(), Some("$LATEST".into()))
        );
        assert_eq!(
            p.resolve("123456789012:function:f").unwrap(),
            ("f".into(), None)
        );
        assert_eq!(
            p.resolve("arn:aws:lambda:eu-west-3:123456789012:function:f:7")
                .unwrap(),
            ("f".into(), Some("7".into()))
        );
        assert_eq!(
            p.arn("f"),
            "arn:aws:lambda:eu-west-3:123456789012:function:f"
        );
    }

    #[test]
    fn other_places_and_bad_forms_are_refused() {
        let p = here();
        let e = p
            .resolve("arn:aws:lambda:us-east-1:123456789012:function:f")
            .unwrap_err();
        assert_eq!(e.code, "ResourceNotFoundException");
        assert_eq!(
            p.resolve("999999999999:function:f").unwrap_err().status,
            404
        );
        assert_eq!(p.resolve("arn:aws:s3:::bucket").unwrap_err().status, 400);
        assert_eq!(p.resolve("a:b:c").unwrap_err().status, 400);
        assert_eq!(p.resolve_latest("f", Some("$LATEST")).unwrap(), "f");
        assert_eq!(p.resolve_latest("f:1", None).unwrap_err().status, 400);
        assert_eq!(p.resolve_latest("f:1", Some("2")).unwrap_err().status, 400);
    }

    #[test]
    fn qualifiers_come_from_the_arn_or_the_parameter() {
        let p = here();
        let arn = "arn:aws:lambda:eu-west-3:123456789012:function:f:live";
        assert_eq!(
            p.resolve_qualified(arn, None).unwrap(),
            ("f".into(), Some("live".into()))
        );
        assert_eq!(
            p.resolve_qualified("f", Some("3")).unwrap(),
            ("f".into(), Some("3".into()))
        );
        assert_eq!(
            p.resolve_qualified("f:3", Some("3")).unwrap().1.unwrap(),
            "3"
        );
        assert_eq!(
            p.resolve_qualified("f:3", Some("4")).unwrap_err().status,
            400
        );
        assert_eq!(p.invocation_name(arn, None).unwrap(), "f:live");
        assert_eq!(p.invocation_name("f", Some("")).unwrap(), "f");
        assert_eq!(
            p.invocation_name("f", Some("$LATEST")).unwrap(),
            "f:$LATEST"
        );
    }
}
