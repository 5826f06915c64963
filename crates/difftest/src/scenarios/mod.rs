//! The scenarios. Each is `async fn(Ctx) -> Res`, registered in [`all`].
//! Rules: deterministic only (wait for replies or confirms, or poll with a
//! deadline for effects the broker produces asynchronously; never sleep),
//! names from `cx.name(..)`, no branching on which broker runs.

use crate::harness::Scenario;
use crate::scenario;

pub mod access;
pub mod access_matrix;
pub mod connection;
pub mod consistent_hash;
pub mod consume;
pub mod deadletter;
pub mod deadletter_cc;
pub mod exchange;
pub mod lapin_flows;
pub mod limits;
pub mod malformed;
pub mod mgmt_access;
pub mod mgmt_connections;
pub mod mgmt_definitions;
pub mod mgmt_errors;
pub mod mgmt_exchanges;
pub mod mgmt_messages;
pub mod mgmt_node;
pub mod mgmt_policies;
pub mod mgmt_queues;
pub mod publish;
pub mod queue;
pub mod queue_features;
pub mod reply_to;
pub mod topic_access;
pub mod txconfirm;

/// Every scenario, in run order.
pub fn all() -> Vec<Scenario> {
    vec![
        // connection and channels
        scenario!(connection::handshake_and_capabilities),
        scenario!(connection::lapin_connect_and_negotiate),
        scenario!(connection::unknown_vhost_refused),
        scenario!(connection::bad_password_refused),
        scenario!(connection::protocol_header_mismatch),
        scenario!(connection::channel_open_close_reuse),
        scenario!(connection::channel_error_is_isolated),
        scenario!(connection::method_on_unopened_channel),
        scenario!(connection::channel_number_limits),
        scenario!(connection::lapin_channel_reuse),
        // exchanges and bindings
        scenario!(exchange::exchange_declare_all_types),
        scenario!(exchange::exchange_passive_and_delete_missing),
        scenario!(exchange::exchange_inequivalent_declare),
        scenario!(exchange::exchange_reserved_amq_names),
        scenario!(exchange::default_exchange_rules),
        scenario!(exchange::exchange_to_exchange_bindings),
        scenario!(exchange::exchange_delete_if_unused),
        scenario!(exchange::exchange_auto_delete),
        scenario!(exchange::exchange_internal),
        scenario!(exchange::queue_bind_unbind),
        scenario!(exchange::exchange_alternate_exchange_types),
        // queues
        scenario!(queue::queue_server_named),
        scenario!(queue::queue_exclusive_other_connection),
        scenario!(queue::queue_auto_delete),
        scenario!(queue::queue_counts),
        scenario!(queue::queue_inequivalent_declare),
        scenario!(queue::queue_argument_validation),
        scenario!(queue::queue_purge),
        scenario!(queue::queue_delete_conditions),
        scenario!(queue::queue_reserved_names),
        // publishing and routing
        scenario!(publish::mandatory_no_route),
        scenario!(publish::routing_direct_and_fanout),
        scenario!(publish::routing_topic),
        scenario!(publish::routing_headers),
        scenario!(publish::properties_byte_for_byte),
        scenario!(publish::user_id_validation),
        scenario!(publish::alternate_exchange),
        scenario!(publish::cc_bcc_headers),
        // the consistent-hash exchange (plugin)
        scenario!(consistent_hash::consistent_hash_by_routing_key),
        scenario!(consistent_hash::consistent_hash_by_header),
        scenario!(consistent_hash::consistent_hash_by_property),
        scenario!(consistent_hash::consistent_hash_unbind_and_rebind),
        scenario!(consistent_hash::consistent_hash_with_cc),
        scenario!(consistent_hash::consistent_hash_argument_errors),
        // consuming and acknowledging
        scenario!(consume::consume_and_cancel),
        scenario!(consume::consume_errors),
        scenario!(consume::server_cancel_on_queue_delete),
        scenario!(consume::server_cancel_needs_capability),
        scenario!(consume::consume_argument_types),
        scenario!(consume::get_and_get_empty),
        scenario!(consume::ack_nack_reject),
        scenario!(consume::requeue_order_and_redelivered),
        scenario!(consume::unknown_and_double_ack),
        scenario!(consume::qos_prefetch_per_consumer),
        scenario!(consume::qos_global_channel_limit),
        scenario!(consume::basic_recover),
        scenario!(consume::round_robin_dispatch),
        scenario!(consume::work_queue_fairness),
        scenario!(consume::consume_existing_backlog),
        // transactions and confirms
        scenario!(txconfirm::tx_commit_and_rollback_publishes),
        scenario!(txconfirm::tx_acks),
        scenario!(txconfirm::tx_and_confirm_mode_errors),
        scenario!(txconfirm::confirm_sequence_and_returns),
        scenario!(txconfirm::confirm_nack_on_reject_publish),
        // dead-lettering and TTL
        scenario!(deadletter::dead_letter_on_reject),
        scenario!(deadletter::dead_letter_twice_and_routing_key),
        scenario!(deadletter::dead_letter_on_expiry),
        scenario!(deadletter::dead_letter_on_max_length),
        scenario!(deadletter::message_ttl),
        scenario!(deadletter::delivery_limit_dead_letters),
        scenario!(deadletter_cc::dead_letter_cc_without_routing_key),
        scenario!(deadletter_cc::dead_letter_cc_with_routing_key),
        scenario!(deadletter_cc::dead_letter_cc_rejected_twice),
        // queue and consumer features
        scenario!(queue_features::queue_expires),
        scenario!(queue_features::priority_queue_order),
        scenario!(queue_features::single_active_consumer),
        scenario!(queue_features::consumer_priorities),
        // direct reply-to
        scenario!(reply_to::reply_to_rpc_round_trip),
        scenario!(reply_to::reply_to_requester_gone),
        scenario!(reply_to::reply_to_errors),
        // lapin's view
        scenario!(lapin_flows::lapin_publish_consume_ack),
        scenario!(lapin_flows::lapin_confirms_and_returns),
        scenario!(lapin_flows::lapin_consumer_cancelled_by_server),
        scenario!(lapin_flows::lapin_async_channel_errors),
        scenario!(lapin_flows::lapin_transactions),
        // access control (users, vhosts, permissions, limits set up with operator commands)
        scenario!(access::access_login_refusals),
        scenario!(access_matrix::access_permission_matrix),
        scenario!(access::access_server_named_queue),
        scenario!(topic_access::topic_permissions),
        scenario!(access::access_user_id_impersonator),
        scenario!(limits::vhost_limits),
        scenario!(limits::user_limits),
        scenario!(access::access_delete_vhost_with_connection),
        scenario!(access::access_delete_user_with_connection),
        // malformed input
        scenario!(malformed::malformed_frames),
        scenario!(malformed::malformed_content_sequence),
        scenario!(malformed::malformed_methods),
    ]
}

/// The management HTTP API scenarios (the `mgmt_differential` suite), in run order.
pub fn mgmt_all() -> Vec<Scenario> {
    vec![
        scenario!(mgmt_node::mgmt_overview_shape),
        scenario!(mgmt_access::mgmt_vhosts_crud),
        scenario!(mgmt_access::mgmt_users_crud),
        scenario!(mgmt_access::mgmt_permissions_crud),
        scenario!(mgmt_access::mgmt_limits),
        scenario!(mgmt_policies::mgmt_policies_crud),
        scenario!(mgmt_policies::mgmt_operator_policies_crud),
        scenario!(mgmt_policies::mgmt_policy_validation),
        scenario!(mgmt_queues::mgmt_queue_declare_and_show),
        scenario!(mgmt_queues::mgmt_queue_listing),
        scenario!(mgmt_queues::mgmt_queue_exclusive),
        scenario!(mgmt_exchanges::mgmt_exchanges),
        scenario!(mgmt_exchanges::mgmt_bindings),
        scenario!(mgmt_messages::mgmt_queue_get),
        scenario!(mgmt_connections::mgmt_connections_and_channels),
        scenario!(mgmt_connections::mgmt_connection_close_default_reason),
        scenario!(mgmt_definitions::mgmt_definitions_export),
        scenario!(mgmt_node::mgmt_health_checks),
        scenario!(mgmt_errors::mgmt_auth_errors),
        scenario!(mgmt_errors::mgmt_not_found),
        scenario!(mgmt_errors::mgmt_method_and_body_errors),
    ]
}
