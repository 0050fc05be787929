// Package protocol speaks the Kafka wire protocol: it frames requests,
// decodes and encodes bodies with kmsg, dispatches by API key to one file
// per API (named by key, as in franz-go's kfake), and answers each
// connection's pipelined requests in order. Handlers translate between the
// wire and the agent's state (meta), its ingest buffer and reader (tiered);
// nothing below this package knows about Kafka's bytes on the wire.
//
// A connection's requests that change state take effect in the order they
// were sent (order.go), and what one client may hold of an agent is bounded
// by Kafka's limits, under their Kafka names (client_limits.go).
//
// A connection is served only once it has authenticated (auth.go): its TLS
// handshake and, on a SASL listener, SaslHandshake and SaslAuthenticate;
// before that only ApiVersions and the SASL APIs are answered. Every
// handler then asks the authorizer, per resource it touches, whether the
// connection's principal may (authorize.go), by the ACLs in the metadata
// log; the ACL and SCRAM APIs manage them (acls.go, scram_credentials.go).
//
// Transactions (txn.go) keep the coordinator's whole state in the metadata
// log, so any agent answers any transactional request: ending one writes
// its markers to the bucket, then one log op gives them their offsets and
// completes it. Read_committed fetches stop at the last stable offset.
//
// Agents also talk to each other over the same listener, on connections
// that greet with the cluster's peer token (forward.go): group requests
// forwarded behind a shared address, and the metadata log's relay to the
// sequencer in two private APIs (sequencer.go), which a client never sees.
// A forwarded request is authorized by the coordinator as the client's
// principal, which the relay's greeting carries.
package protocol
