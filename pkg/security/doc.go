// Package security holds the authentication and authorization primitives
// the Kafka listener uses (pkg/protocol): the server side of SASL SCRAM
// (RFC 5802, RFC 7677) and PLAIN (RFC 4616), Kafka's ACL authorizer, and
// the listener's TLS certificate, reloaded when its files change.
//
// It keeps no state of its own: credentials and ACL bindings live in the
// metadata log (pkg/meta), so every agent of a fleet decides alike.
//
// Invariants:
//   - No password is kept: a SCRAM credential is its salt, iteration count,
//     StoredKey and ServerKey, and PLAIN derives StoredKey from the given
//     password to compare.
//   - A failed authentication says nothing of whether the user exists: every
//     failure is ErrAuthentication with one message.
//   - Authorize is Kafka's: super users always; otherwise DENY wins over
//     ALLOW, and nothing allowed is denied unless no binding names the
//     resource and allow.everyone.if.no.acl.found is set.
package security
