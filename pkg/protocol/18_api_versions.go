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
	resp.ApiKeys = SupportedAPIs()
	return resp
}
