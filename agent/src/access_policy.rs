//! An access key's policy: which actions it may perform on which functions. One type
//! and one check for every front end (the REST API, gRPC over TCP). A grant is
//! `ACTION[:PATTERN]`, e.g. `lambda:InvokeFunction:orders-*`: the action is
//! `lambda:NAME` (Lambda's operation names), `flint:NAME` (Flint's own services) or a
//! pattern of them (`lambda:Get*`, `lambda:*`, `*`); the function pattern uses the
//! execution roles' matching (roles/policy.rs: `*` matches any run of characters) and
//! defaults to `*`. A key without a policy may do everything (keys made before
//! policies existed keep working); a key with one may do only what a grant names.

use crate::roles::policy::{check_entries, matches};

/// Every action a grant can name without a wildcard (a name outside this list is a
/// typo, refused at `flint keys create`).
pub const ACTIONS: &[&str] = &[
    "lambda:InvokeFunction",
    "lambda:CreateFunction",
    "lambda:GetFunction",
    "lambda:GetFunctionConfiguration",
    "lambda:ListFunctions",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:DeleteFunction",
    "lambda:PutFunctionConcurrency",
    "lambda:DeleteFunctionConcurrency",
    "lambda:GetFunctionConcurrency",
    "lambda:PutFunctionEventInvokeConfig",
    "lambda:UpdateFunctionEventInvokeConfig",
    "lambda:GetFunctionEventInvokeConfig",
    "lambda:DeleteFunctionEventInvokeConfig",
    "lambda:ListFunctionEventInvokeConfigs",
    "lambda:PublishVersion",
    "lambda:ListVersionsByFunction",
    "lambda:CreateAlias",
    "lambda:GetAlias",
    "lambda:UpdateAlias",
    "lambda:DeleteAlias",
    "lambda:ListAliases",
    "lambda:CreateFunctionUrlConfig",
    "lambda:GetFunctionUrlConfig",
    "lambda:UpdateFunctionUrlConfig",
    "lambda:DeleteFunctionUrlConfig",
    "lambda:ListFunctionUrlConfigs",
    "lambda:CreateEventSourceMapping",
    "lambda:GetEventSourceMapping",
    "lambda:UpdateEventSourceMapping",
    "lambda:DeleteEventSourceMapping",
    "lambda:ListEventSourceMappings",
    "lambda:PublishLayerVersion",
    "lambda:ListLayers",
    "lambda:ListLayerVersions",
    "lambda:GetLayerVersion",
    "lambda:DeleteLayerVersion",
    // Flint's own: function logs and invocation history (per function), and whole
    // gRPC services that act on no single function.
    "flint:GetLogs",
    "flint:GetInvocationHistory",
    "flint:Events",
    "flint:Triggers",
    "flint:Roles",
    "flint:Node",
    "flint:Usage",
];

/// Actions that name no function (the grant's pattern does not apply to them, as IAM's
/// resource `*`).
pub fn is_unscoped(action: &str) -> bool {
    matches!(
        action,
        "lambda:ListFunctions"
            | "flint:Events"
            | "flint:Triggers"
            | "flint:Roles"
            | "flint:Node"
            | "flint:Usage"
    )
}

/// Layer actions: they name a layer, not a function, so only a grant for every
/// function (pattern `*`) reaches them; `lambda:Get*:orders-*` does not read layers.
pub fn is_layer_action(action: &str) -> bool {
    matches!(
        action,
        "lambda:PublishLayerVersion"
            | "lambda:ListLayers"
            | "lambda:ListLayerVersions"
            | "lambda:GetLayerVersion"
            | "lambda:DeleteLayerVersion"
    )
}

/// A grant that cannot match anything, with what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not `ACTION[:PATTERN]`
    #[error(
        "grant {0:?} is invalid: write ACTION[:PATTERN], e.g. lambda:InvokeFunction:orders-* \
         or lambda:* (actions: lambda:NAME, flint:NAME, * for all)"
    )]
    Syntax(String),
    /// An action no front end performs
    #[error("grant {grant:?}: unknown action {action}; known actions: {known}")]
    UnknownAction {
        grant: String,
        action: String,
        known: String,
    },
    /// A function pattern that can match no function name
    #[error("grant {0:?}: {1}")]
    Pattern(String, String),
}

/// One `ACTION:PATTERN` grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub action: String,
    pub functions: String,
}

impl Grant {
    /// Parses and checks `ACTION[:PATTERN]`.
    pub fn parse(spec: &str) -> Result<Grant, GrantError> {
        let syntax = || GrantError::Syntax(spec.to_string());
        let (action, functions) = if let Some(rest) = spec.strip_prefix('*') {
            match rest {
                "" => ("*".to_string(), "*"),
                r => ("*".to_string(), r.strip_prefix(':').ok_or_else(syntax)?),
            }
        } else {
            let mut parts = spec.splitn(3, ':');
            let (svc, name) = (parts.next().unwrap_or(""), parts.next().ok_or_else(syntax)?);
            (format!("{svc}:{name}"), parts.next().unwrap_or("*"))
        };
        let (svc, name) = action.split_once(':').unwrap_or(("*", "*"));
        let ok_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '*');
        if action != "*" && (!matches!(svc, "lambda" | "flint") || !ok_name) {
            return Err(syntax());
        }
        if !action.contains('*') && !ACTIONS.contains(&action.as_str()) {
            return Err(GrantError::UnknownAction {
                grant: spec.to_string(),
                action,
                known: ACTIONS.join(", "),
            });
        }
        check_entries(&[functions.to_string()])
            .map_err(|e| GrantError::Pattern(spec.to_string(), e.to_string()))?;
        Ok(Grant {
            action,
            functions: functions.to_string(),
        })
    }

    /// Whether this grant allows `action` on `function` (`None`: an unscoped action).
    pub fn allows(&self, action: &str, function: Option<&str>) -> bool {
        if is_layer_action(action) {
            return matches(&self.action, action) && self.functions == "*";
        }
        matches(&self.action, action)
            && (is_unscoped(action) || function.is_none_or(|f| matches(&self.functions, f)))
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.action, self.functions)
    }
}

/// A key's grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPolicy {
    pub grants: Vec<Grant>,
}

impl KeyPolicy {
    /// Parses the grants as given to `flint keys create --allow` (and as stored).
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<KeyPolicy, GrantError> {
        Ok(KeyPolicy {
            grants: specs
                .iter()
                .map(|s| Grant::parse(s.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether any grant allows `action` on `function`.
    pub fn allows(&self, action: &str, function: Option<&str>) -> bool {
        self.grants.iter().any(|g| g.allows(action, function))
    }
}

/// What the caller may do: everything (the Unix socket, a key without a policy) or
/// what its key's policy grants.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub policy: Option<KeyPolicy>,
}

impl Caller {
    /// `Ok` when allowed, else the refusal in AccessDeniedException's wording; `arn` is
    /// the function's ARN (`None`: unscoped), `account` the account id.
    pub fn authorize(
        &self,
        action: &str,
        function: Option<&str>,
        arn: Option<&str>,
        account: &str,
    ) -> Result<(), String> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        if policy.allows(action, function) {
            return Ok(());
        }
        tracing::info!(access_key = %self.key_id, action, function = ?function, "access denied by key policy");
        Err(denial(&self.key_id, account, action, arn, policy))
    }
}

/// Lambda's AccessDeniedException message, with the key's grants appended so the
/// operator sees what to change.
pub fn denial(
    key_id: &str,
    account: &str,
    action: &str,
    arn: Option<&str>,
    policy: &KeyPolicy,
) -> String {
    let grants: Vec<String> = policy.grants.iter().map(Grant::to_string).collect();
    format!(
        "User: arn:aws:iam::{account}:user/{key_id} is not authorized to perform: {action} on \
         resource: {} because no identity-based policy allows the {action} action (access key \
         {key_id} allows: {})",
        arn.unwrap_or("*"),
        if grants.is_empty() {
            "nothing".to_string()
        } else {
            grants.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_with_a_default_pattern_and_refuse_typos() {
        let g = Grant::parse("lambda:InvokeFunction:orders-*").unwrap();
        assert_eq!(
            (g.action.as_str(), g.functions.as_str()),
            ("lambda:InvokeFunction", "orders-*")
        );
        assert_eq!(Grant::parse("lambda:GetFunction").unwrap().functions, "*");
        assert_eq!(Grant::parse("*").unwrap().to_string(), "*:*");
        assert_eq!(Grant::parse("*:billing").unwrap().functions, "billing");
        assert_eq!(Grant::parse("lambda:Get*:a").unwrap().action, "lambda:Get*");
        assert!(matches!(
            Grant::parse("lambda:InvokeFunctions"),
            Err(GrantError::UnknownAction { .. })
        ));
        assert!(matches!(
            Grant::parse("s3:GetObject"),
            Err(GrantError::Syntax(_))
        ));
        assert!(matches!(Grant::parse("lambda"), Err(GrantError::Syntax(_))));
        assert!(matches!(Grant::parse("*x"), Err(GrantError::Syntax(_))));
        assert!(matches!(
            Grant::parse("lambda:InvokeFunction:a/b"),
            Err(GrantError::Pattern(..))
        ));
        let e = Grant::parse("lambda").unwrap_err().to_string();
        assert!(e.contains("lambda:InvokeFunction:orders-*"), "{e}");
    }

    #[test]
    fn an_invoke_only_policy_allows_invoking_matching_functions_only() {
        let p =
            KeyPolicy::parse(&["lambda:InvokeFunction:orders-*", "lambda:ListFunctions"]).unwrap();
        assert!(p.allows("lambda:InvokeFunction", Some("orders-eu")));
        assert!(!p.allows("lambda:InvokeFunction", Some("billing")));
        assert!(!p.allows("lambda:CreateFunction", Some("orders-eu")));
        assert!(p.allows("lambda:ListFunctions", None));
        assert!(!p.allows("flint:Node", None));
        let all = KeyPolicy::parse(&["lambda:*"]).unwrap();
        assert!(all.allows("lambda:DeleteFunction", Some("x")));
        assert!(!all.allows("flint:Node", None));
        assert!(KeyPolicy::parse(&["*"]).unwrap().allows("flint:Node", None));
        let reads = KeyPolicy::parse(&["lambda:Get*:orders-*"]).unwrap();
        assert!(reads.allows("lambda:GetFunctionConfiguration", Some("orders-1")));
        assert!(!reads.allows("lambda:GetFunction", Some("billing")));
    }

    #[test]
    fn layer_actions_need_a_grant_for_every_function() {
        let p = KeyPolicy::parse(&["lambda:GetLayerVersion", "lambda:Get*:orders-*"]).unwrap();
        assert!(p.allows("lambda:GetLayerVersion", None));
        assert!(!p.allows("lambda:DeleteLayerVersion", None));
        let scoped = KeyPolicy::parse(&["lambda:*:orders-*"]).unwrap();
        assert!(!scoped.allows("lambda:ListLayers", None));
        assert!(scoped.allows("lambda:GetFunction", Some("orders-1")));
        let all = KeyPolicy::parse(&["lambda:*Layer*"]).unwrap();
        for a in ACTIONS.iter().filter(|a| is_layer_action(a)) {
            assert!(all.allows(a, None), "{a}");
        }
        assert!(Grant::parse("lambda:PublishLayerVersion").is_ok());
    }

    #[test]
    fn callers_without_a_policy_may_do_everything_and_denials_use_lambdas_words() {
        let open = Caller {
            key_id: "FLKA".into(),
            policy: None,
        };
        assert!(open
            .authorize("lambda:CreateFunction", Some("x"), None, "1")
            .is_ok());
        let limited = Caller {
            key_id: "FLKB".into(),
            policy: Some(KeyPolicy::parse(&["lambda:InvokeFunction:orders-*"]).unwrap()),
        };
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:x";
        let e = limited
            .authorize(
                "lambda:CreateFunction",
                Some("x"),
                Some(arn),
                "123456789012",
            )
            .unwrap_err();
        assert!(e.starts_with("User: arn:aws:iam::123456789012:user/FLKB is not authorized to perform: lambda:CreateFunction on resource: arn:aws:lambda:us-east-1:123456789012:function:x because no identity-based policy allows the lambda:CreateFunction action"), "{e}");
        assert!(e.contains("allows: lambda:InvokeFunction:orders-*"), "{e}");
        let none = Caller {
            key_id: "FLKC".into(),
            policy: Some(KeyPolicy::default()),
        };
        assert!(none
            .authorize("lambda:GetFunction", Some("x"), None, "1")
            .unwrap_err()
            .contains("allows: nothing"));
    }
}
