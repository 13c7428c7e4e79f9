//! Trigger management on the agent: create, read, list, enable/disable, delete. Each
//! change wakes the scheduler.

use super::model::{arn, check_name, Trigger, TriggerError, TriggerKind};
use super::scheduler::Host;
use crate::core::Agent;
use chrono::{DateTime, SubsecRound, Utc};

/// A trigger as requested.
#[derive(Debug, Clone)]
pub struct NewTrigger {
    pub name: String,
    pub function: String,
    pub kind: TriggerKind,
    pub enabled: bool,
}

impl Agent {
    /// Checks and stores a new trigger; its first fire is the schedule's first time
    /// after now (a rate's periods count from now, to the second).
    pub fn create_trigger(&self, mut new: NewTrigger) -> Result<Trigger, TriggerError> {
        check_name(&new.name)?;
        if let TriggerKind::Files(spec) = &mut new.kind {
            spec.check(&new.name)?;
        }
        if let TriggerKind::Queue(spec) = &new.kind {
            spec.check()?;
            if let Some(dl) = &spec.dead_letter {
                self.store()
                    .get(dl)
                    .map_err(|_| TriggerError::NoFunction(dl.clone()))?;
            }
        }
        let now = Utc::now().trunc_subsecs(0);
        let mut t = Trigger {
            name: new.name,
            function: new.function,
            kind: new.kind,
            enabled: new.enabled,
            created: now,
            last_fire: None,
            last_error: None,
            next_fire: None,
        };
        let next = first_fire(&t, self.parse_options(), now)?;
        t.next_fire = next.filter(|_| t.enabled);
        self.store().insert_trigger(&t)?;
        if matches!(t.kind, TriggerKind::Files(_)) {
            self.files_mounts_changed(&t.function);
        }
        self.triggers_changed();
        tracing::info!(trigger = %t.name, function = %t.function, kind = t.kind.label(), next_fire = ?next, "trigger created");
        Ok(t)
    }

    pub fn get_trigger(&self, name: &str) -> Result<Trigger, TriggerError> {
        self.store().get_trigger(name)
    }

    /// Every trigger, or one function's.
    pub fn list_triggers(&self, function: Option<&str>) -> Result<Vec<Trigger>, TriggerError> {
        Ok(self.store().list_triggers(function)?)
    }

    /// Enables (the next fire is the next time after now: no catch-up) or disables.
    pub fn set_trigger_enabled(&self, name: &str, enabled: bool) -> Result<Trigger, TriggerError> {
        let t = self.store().get_trigger(name)?;
        let next = if enabled {
            first_fire(&t, self.parse_options(), Utc::now())?
        } else {
            None
        };
        self.store().set_trigger_enabled(name, enabled, next)?;
        if enabled && !t.enabled && matches!(t.kind, TriggerKind::Files(_)) {
            // No catch-up: files changed while it was disabled are not delivered.
            self.store().set_files_mark(name, Utc::now())?;
        }
        self.triggers_changed();
        tracing::info!(trigger = %name, enabled, "trigger {}", if enabled { "enabled" } else { "disabled" });
        self.store().get_trigger(name)
    }

    pub fn delete_trigger(&self, name: &str) -> Result<(), TriggerError> {
        let t = self.store().get_trigger(name)?;
        self.store().delete_trigger(name)?;
        if matches!(t.kind, TriggerKind::Files(_)) {
            self.files_mounts_changed(&t.function);
        }
        self.triggers_changed();
        tracing::info!(trigger = %name, "trigger deleted");
        Ok(())
    }

    /// The trigger's ARN (`arn:aws:events:REGION:ACCOUNT:rule/NAME`).
    pub fn trigger_arn(&self, name: &str) -> String {
        arn(&self.config().region, &self.config().account_id, name)
    }

    /// Wakes the scheduler: triggers or functions changed.
    pub fn triggers_changed(&self) {
        self.trigger_state().wake();
        self.files_triggers().wake();
    }
}

/// A schedule's first fire after `now`, or why there is none; None for the kinds
/// that do not fire on a schedule.
fn first_fire(
    t: &Trigger,
    opts: super::schedule_expr::ParseOptions,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, TriggerError> {
    let TriggerKind::Schedule(spec) = &t.kind else {
        return Ok(None);
    };
    t.schedule(opts)?
        .next_after(now)
        .map(Some)
        .ok_or_else(|| TriggerError::NeverFires(spec.expression.clone()))
}
