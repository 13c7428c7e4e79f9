//! A function's event invoke configuration, as Lambda's PutFunctionEventInvokeConfig
//! defines it: retries after a function error (0-2, default 2), maximum event age
//! (60-21,600 s, default 21,600), the on-success / on-failure destinations and the
//! dead-letter target (Lambda's DeadLetterConfig): each another function (by name or
//! ARN) or an http(s):// webhook.

/// Lambda's default and largest MaximumRetryAttempts.
pub const MAX_RETRIES: u32 = 2;
/// Lambda's smallest MaximumEventAgeInSeconds.
pub const MIN_AGE_S: u32 = 60;
/// Lambda's default and largest MaximumEventAgeInSeconds (6 hours).
pub const MAX_AGE_S: u32 = 21_600;

/// One function's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventConfig {
    pub max_retries: u32,
    pub max_age_s: u32,
    /// Function name that receives a record of each successful event.
    pub on_success: Option<String>,
    /// Function name that receives a record of each failed or expired event.
    pub on_failure: Option<String>,
    /// Function name or webhook that also receives the record of each event that
    /// exhausted its retries or expired (the event stays in the built-in
    /// dead-letter queue too).
    pub dead_letter: Option<String>,
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            max_retries: MAX_RETRIES,
            max_age_s: MAX_AGE_S,
            on_success: None,
            on_failure: None,
            dead_letter: None,
        }
    }
}

/// A configuration Lambda would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Retries out of range
    #[error("MaximumRetryAttempts {0} is out of range: use 0, 1 or 2")]
    Retries(u32),
    /// Age out of range
    #[error("MaximumEventAgeInSeconds {0} is out of range: use {MIN_AGE_S} to {MAX_AGE_S}")]
    Age(u32),
    /// Destination does not exist
    #[error("destination {0} is not a function here: create it first or name an existing function (by name or ARN)")]
    Destination(String),
    /// Destination is the function itself
    #[error("destination {0} is the function itself: an event would loop; name another function")]
    SelfDestination(String),
    /// A webhook URL that cannot be used
    #[error("destination {url} is not a usable webhook URL: {why}")]
    Url { url: String, why: String },
}

impl EventConfig {
    /// Checks ranges; `exists` resolves a destination (name or ARN) to a function name.
    pub fn validated(
        mut self,
        function: &str,
        exists: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        if self.max_retries > MAX_RETRIES {
            return Err(ConfigError::Retries(self.max_retries));
        }
        if !(MIN_AGE_S..=MAX_AGE_S).contains(&self.max_age_s) {
            return Err(ConfigError::Age(self.max_age_s));
        }
        for d in [
            &mut self.on_success,
            &mut self.on_failure,
            &mut self.dead_letter,
        ] {
            if let Some(given) = d.take().filter(|s| !s.is_empty()) {
                if super::webhook::is_url(&given) {
                    super::webhook::check_url(&given).map_err(|why| ConfigError::Url {
                        url: given.clone(),
                        why,
                    })?;
                    *d = Some(given);
                    continue;
                }
                let name = exists(&given).ok_or_else(|| ConfigError::Destination(given.clone()))?;
                if name == function {
                    return Err(ConfigError::SelfDestination(given));
                }
                *d = Some(name);
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(s: &str) -> Option<String> {
        let name = s.rsplit(':').next().unwrap_or(s);
        (name == "sink").then(|| name.to_string())
    }

    #[test]
    fn ranges_and_destinations_are_checked_as_lambda_does() {
        let ok = EventConfig {
            max_retries: 0,
            max_age_s: 60,
            on_success: Some("arn:aws:lambda:us-east-1:000000000000:function:sink".into()),
            on_failure: Some(String::new()),
            dead_letter: Some("https://hooks.example.com/dlq".into()),
        }
        .validated("f", known)
        .unwrap();
        assert_eq!(ok.on_success.as_deref(), Some("sink"));
        assert_eq!(ok.on_failure, None);
        assert_eq!(
            ok.dead_letter.as_deref(),
            Some("https://hooks.example.com/dlq")
        );
        let bad = |c: EventConfig| c.validated("f", known).unwrap_err();
        let base = EventConfig::default();
        assert_eq!(
            bad(EventConfig {
                max_retries: 3,
                ..base.clone()
            }),
            ConfigError::Retries(3)
        );
        assert_eq!(
            bad(EventConfig {
                max_age_s: 59,
                ..base.clone()
            }),
            ConfigError::Age(59)
        );
        assert_eq!(
            bad(EventConfig {
                max_age_s: 21_601,
                ..base.clone()
            }),
            ConfigError::Age(21_601)
        );
        assert_eq!(
            bad(EventConfig {
                on_failure: Some("nope".into()),
                ..base.clone()
            }),
            ConfigError::Destination("nope".into())
        );
        let e = bad(EventConfig {
            on_failure: Some("ftp://h/x".into()),
            ..base.clone()
        });
        assert!(matches!(e, ConfigError::Url { .. }), "{e:?}");
        assert!(e.to_string().contains("use http:// or https://"), "{e}");
        assert!(matches!(
            EventConfig {
                on_success: Some("sink".into()),
                ..base
            }
            .validated("sink", known),
            Err(ConfigError::SelfDestination(_))
        ));
    }
}
