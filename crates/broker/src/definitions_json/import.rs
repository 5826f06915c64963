//! Importing a definitions file: read it, check all of it against the broker (see `plan`), then
//! apply it entry by entry through the one path every change takes ([`Broker::admin`] and
//! [`crate::VHost::apply`]).

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{DefinitionsImportError, ImportSummary, Problem};
use super::format::DefinitionsFile;
use super::plan::{label_of_value, plan, Step};
use crate::broker::Broker;
use crate::effects::Effects;
use crate::error::BrokerError;
use crate::time::Now;
use crate::vhost::Actor;

/// Reads a definitions file; an entry that does not have the fields its category needs (with
/// their types) is a problem naming it.
pub fn parse_definitions(json: &[u8]) -> Result<DefinitionsFile, DefinitionsImportError> {
    let value: Value = serde_json::from_slice(json).map_err(DefinitionsImportError::NotJson)?;
    let Value::Object(mut top) = value else {
        return Err(DefinitionsImportError::NotAnObject(json_type(&value)));
    };
    let mut problems = Vec::new();
    let mut version = |key: &str| match top.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let mut file = DefinitionsFile {
        rabbit_version: version("rabbit_version"),
        rabbitmq_version: version("rabbitmq_version"),
        product_name: version("product_name"),
        product_version: version("product_version"),
        ..DefinitionsFile::default()
    };
    file.users = take_list(&mut top, "users", &mut problems);
    file.vhosts = take_list(&mut top, "vhosts", &mut problems);
    file.permissions = take_list(&mut top, "permissions", &mut problems);
    file.topic_permissions = take_list(&mut top, "topic_permissions", &mut problems);
    file.parameters = take_list(&mut top, "parameters", &mut problems);
    file.global_parameters = take_list(&mut top, "global_parameters", &mut problems);
    file.policies = take_list(&mut top, "policies", &mut problems);
    file.queues = take_list(&mut top, "queues", &mut problems);
    file.exchanges = take_list(&mut top, "exchanges", &mut problems);
    file.bindings = take_list(&mut top, "bindings", &mut problems);
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(DefinitionsImportError::Invalid(problems))
    }
}

/// The entries of one category; missing or null is none.
fn take_list<T: DeserializeOwned>(
    top: &mut serde_json::Map<String, Value>,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    let items = match top.remove(key) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            let reason = format!("expected a list of entries, not {}", json_type(&other));
            problems.push(Problem { entry: key.to_owned(), reason });
            return Vec::new();
        }
    };
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let entry = label_of_value(key, i, &item);
        if !item.is_object() {
            let reason = format!("expected an object, not {}", json_type(&item));
            problems.push(Problem { entry, reason });
            continue;
        }
        match serde_json::from_value(item) {
            Ok(parsed) => entries.push(parsed),
            Err(e) => problems.push(Problem { entry, reason: e.to_string() }),
        }
    }
    entries
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Broker {
    /// Imports definitions in RabbitMQ's JSON format (`rabbitmqctl export_definitions`, the
    /// management API's `GET /api/definitions`): users with their password hashes, vhosts,
    /// permissions, topic permissions, vhost limits, policies, exchanges, queues and bindings.
    ///
    /// The whole file is checked first: if any entry is wrong, nothing changes and the error
    /// lists every such entry. Importing the same file again changes nothing: as in RabbitMQ,
    /// exchanges and queues that exist are left as they are (not compared), users, vhosts and
    /// permissions are set again to the same values, and bindings that exist stay.
    pub fn import_definitions(&self, json: &[u8], now: Now) -> Result<ImportSummary, DefinitionsImportError> {
        let file = parse_definitions(json)?;
        self.import_parsed_definitions(&file, now)
    }

    /// [`Broker::import_definitions`] of a file already read.
    pub fn import_parsed_definitions(
        &self,
        file: &DefinitionsFile,
        now: Now,
    ) -> Result<ImportSummary, DefinitionsImportError> {
        let plan = plan(self, file).map_err(DefinitionsImportError::Invalid)?;
        for (entry, step) in plan.steps {
            self.apply_step(step, now)
                .map_err(|error| DefinitionsImportError::Failed { entry, error: Box::new(error) })?;
        }
        for skipped in &plan.summary.skipped {
            tracing::warn!("definitions: {skipped}");
        }
        tracing::info!("imported definitions: {}", plan.summary);
        Ok(plan.summary)
    }

    fn apply_step(&self, step: Step, now: Now) -> Result<(), BrokerError> {
        match step {
            Step::Admin(command) => self.admin(command, now),
            Step::Topology { vhost, command } => {
                let vhost = self.vhost(&vhost).ok_or(BrokerError::VhostNotFound(vhost))?;
                let mut effects = Effects::default();
                let result = vhost.apply(command, Actor::BROKER, now.instant, &mut effects);
                effects.apply(now.instant);
                result.map(|_| ())
            }
            Step::Policy { operator, policy } => self.apply_imported_policy(operator, &policy, now),
        }
    }
}
