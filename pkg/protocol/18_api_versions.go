package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions, versions 0-4. The table is built from every API file's
// register call. v3: flexible; the answer still uses response header v0.
func init() { register(18, 0, 4, deferred(handleApiVersions)) }

func handleApiVersions(_ context.Context, _ *Server, req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = advertisedAPIs()
	return resp
}

// advertisedAPIs is the table ApiVersions answers with: SupportedAPIs, but
// with Produce advertised from v0, as Apache Kafka 4 does (KAFKA-18659).
// librdkafka releases without the fix for confluentinc/librdkafka#4956
// (2.0.2, say) compress with gzip, snappy or lz4 only if the broker lists
// Produce v0, and otherwise silently send uncompressed batches. Clients pick the highest common
// version, so none sends v0-2; one that does gets UNSUPPORTED_VERSION,
// since the handler still serves only v3+.
//
// SaslHandshake is advertised from v0 for the same reason: librdkafka
// (kcat, confluent-kafka-python) enables SaslAuthenticate only if the
// broker lists SaslHandshake v0 to v1 and SaslAuthenticate v0, and
// otherwise refuses to log in ("SASL Handshake not supported by broker").
// It then uses v1; a client that sends v0 (whose tokens follow unframed)
// gets UNSUPPORTED_VERSION.
func advertisedAPIs() []kmsg.ApiVersionsResponseApiKey {
	keys := SupportedAPIs()
	for i := range keys {
		switch keys[i].ApiKey {
		case kmsg.Produce.Int16(), kmsg.SASLHandshake.Int16():
			keys[i].MinVersion = 0
		}
	}
	return keys
}
