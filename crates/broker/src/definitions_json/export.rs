//! Exporting the broker's definitions in RabbitMQ's JSON format, as RabbitMQ 3.10 writes it
//! (tags as lists, user limits as an object, vhost limits as `vhost-limits` parameters), so the
//! file imports into RabbitMQ 3.10 and into Warren unchanged. Entries are sorted (vhost, then
//! name) so two exports of the same broker are equal; bindings keep their order within an
//! exchange (a consistent-hash exchange's ring follows it).

use base64::Engine;
use serde_json::Value;

use super::arguments::from_field_table;
use super::format::*;
use super::policies;
use crate::broker::Broker;
use crate::exchange::Destination;
use crate::VhostLimits;

/// The RabbitMQ version whose format Warren writes, given as `rabbit_version`: tools read it to
/// know the format (Warren's own version is `product_version`).
pub const RABBITMQ_FORMAT_VERSION: &str = "3.10.8";

impl Broker {
    /// The broker's definitions, as [`Broker::export_definitions_json`] writes them.
    ///
    /// Left out, as RabbitMQ leaves them out: exclusive queues, the default exchange and the
    /// `amq.*` exchanges; also queues named `amq.*` (server-named ones), which no import would
    /// take.
    pub fn export_definitions(&self) -> DefinitionsFile {
        let access = self.access();
        let users = access.users().iter().map(|u| user_entry(u)).collect();
        let vhost_settings = access.vhosts();
        let vhosts = vhost_settings.iter().map(|(name, settings)| vhost_entry(name, settings)).collect();
        let permissions = access
            .all_permissions()
            .into_iter()
            .map(|(vhost, user, p)| PermissionEntry {
                user,
                vhost,
                configure: p.configure.as_str().to_owned(),
                write: p.write.as_str().to_owned(),
                read: p.read.as_str().to_owned(),
            })
            .collect();
        let topic_permissions = access
            .all_topic_permissions()
            .into_iter()
            .map(|(vhost, user, p)| TopicPermissionEntry {
                user,
                vhost,
                exchange: p.exchange,
                write: p.write,
                read: p.read,
            })
            .collect();
        let (policies, operator_policies) = policies::exported(self);
        let mut parameters: Vec<ParameterEntry> =
            vhost_settings.iter().filter_map(|(name, s)| vhost_limits(name, &s.limits)).collect();
        parameters.extend(operator_policies);
        let (queues, exchanges, bindings) = self.export_topology();
        DefinitionsFile {
            rabbit_version: Some(RABBITMQ_FORMAT_VERSION.to_owned()),
            rabbitmq_version: Some(RABBITMQ_FORMAT_VERSION.to_owned()),
            product_name: Some("Warren".to_owned()),
            product_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            users,
            vhosts,
            permissions,
            topic_permissions,
            parameters,
            global_parameters: Vec::new(),
            policies,
            queues,
            exchanges,
            bindings,
        }
    }

    /// The broker's definitions as a JSON document (pretty-printed, ending with a newline).
    pub fn export_definitions_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(&self.export_definitions()).expect("definitions serialize");
        json.push(b'\n');
        json
    }

    fn export_topology(&self) -> (Vec<QueueEntry>, Vec<ExchangeEntry>, Vec<BindingEntry>) {
        let (mut queues, mut exchanges, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
        let mut vhosts = self.vhosts();
        vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        for vhost in vhosts {
            let mut vhost_queues = vhost.queues();
            vhost_queues.sort_by(|a, b| a.name.cmp(&b.name));
            for q in vhost_queues.iter().filter(|q| exported_queue(&q.name, q.exclusive_owner)) {
                let quorum = q.arguments.get("x-queue-type").and_then(|t| t.as_str()) == Some("quorum");
                queues.push(QueueEntry {
                    name: q.name.to_string(),
                    vhost: vhost.name.clone(),
                    durable: q.durable,
                    auto_delete: q.auto_delete,
                    arguments: from_field_table(&q.arguments),
                    kind: Some(if quorum { "quorum" } else { "classic" }.to_owned()),
                });
            }
            let mut vhost_exchanges = vhost.exchanges();
            vhost_exchanges.sort_by(|a, b| a.name.cmp(&b.name));
            for x in &vhost_exchanges {
                if !x.name.starts_with("amq.") {
                    exchanges.push(ExchangeEntry {
                        name: x.name.to_string(),
                        vhost: vhost.name.clone(),
                        kind: x.kind.as_str().to_owned(),
                        durable: x.durable,
                        auto_delete: x.auto_delete,
                        internal: x.internal,
                        arguments: from_field_table(&x.arguments),
                    });
                }
                for b in x.bindings() {
                    let (destination, destination_type) = match &b.destination {
                        Destination::Queue(q) if exported_queue(&q.name, q.exclusive_owner) => {
                            (q.name.to_string(), "queue")
                        }
                        Destination::Queue(_) => continue,
                        Destination::Exchange(e) => (e.name.to_string(), "exchange"),
                    };
                    bindings.push(BindingEntry {
                        source: x.name.to_string(),
                        vhost: vhost.name.clone(),
                        destination,
                        destination_type: destination_type.to_owned(),
                        routing_key: b.key.to_string(),
                        arguments: from_field_table(&b.args),
                    });
                }
            }
        }
        (queues, exchanges, bindings)
    }
}

fn exported_queue(name: &str, exclusive_owner: Option<u64>) -> bool {
    exclusive_owner.is_none() && !name.starts_with("amq.")
}

fn user_entry(u: &crate::User) -> UserEntry {
    let limits = u.limits.to_json();
    UserEntry {
        name: u.name.clone(),
        password_hash: Some(base64::engine::general_purpose::STANDARD.encode(&u.password.bytes)),
        password: None,
        hashing_algorithm: Some(u.password.algorithm.rabbit_name().to_owned()),
        tags: Some(Tags::List(u.tags.clone())),
        limits: Some(limits),
    }
}

/// A vhost with its description and tags both at the top (newer RabbitMQ) and under
/// `metadata` (3.10); its limits go to a `vhost-limits` parameter, as RabbitMQ imports them.
fn vhost_entry(name: &str, settings: &crate::VhostSettings) -> VhostEntry {
    VhostEntry {
        name: name.to_owned(),
        description: Some(settings.description.clone()),
        tags: Some(Tags::List(settings.tags.clone())),
        metadata: Some(VhostMetadata {
            description: Some(settings.description.clone()),
            tags: Some(Tags::List(settings.tags.clone())),
            default_queue_type: None,
        }),
        default_queue_type: None,
    }
}

fn vhost_limits(vhost: &str, limits: &VhostLimits) -> Option<ParameterEntry> {
    let value = limits.to_json();
    (!value.is_empty()).then(|| ParameterEntry {
        vhost: vhost.to_owned(),
        component: "vhost-limits".to_owned(),
        name: "limits".to_owned(),
        value: Value::Object(value),
    })
}
