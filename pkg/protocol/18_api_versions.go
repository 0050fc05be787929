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
func advertisedAPIs() []kmsg.ApiVersionsResponseApiKey {
	keys := SupportedAPIs()
	for i := range keys {
		if keys[i].ApiKey == kmsg.Produce.Int16() {
			keys[i].MinVersion = 0
		}
	}
	return keys
}
