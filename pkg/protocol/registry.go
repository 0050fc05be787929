package protocol

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A handler runs in two phases. The first runs on the connection's read
// loop, in request order, and must not block for long: Produce appends its
// batches there so that one connection's batches keep their order. It
// returns the second phase, which runs concurrently with later requests and
// produces the response (nil: send none, as for acks=0).
type handler func(ctx context.Context, s *Server, req kmsg.Request) func() kmsg.Response

type api struct {
	name       string // private APIs only (sequencer.go); kmsg names the others
	key        int16
	minV, maxV int16
	handle     handler
}

var apis = map[int16]api{}

// register is called from each API file's init: the version table lives
// beside the handler, and ApiVersions is derived from it.
func register(key, minV, maxV int16, h handler) {
	apis[key] = api{key: key, minV: minV, maxV: maxV, handle: h}
}

// SupportedAPIs lists the served APIs and versions, sorted by key.
func SupportedAPIs() []kmsg.ApiVersionsResponseApiKey {
	out := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis))
	for _, a := range apis {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.minV, a.maxV
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}

// twoPhase wraps a handler over its request type.
func twoPhase[Req kmsg.Request](fn func(ctx context.Context, s *Server, req Req) func() kmsg.Response) handler {
	return func(ctx context.Context, s *Server, req kmsg.Request) func() kmsg.Response {
		return fn(ctx, s, req.(Req))
	}
}

// deferred wraps a handler that has no ordered first phase.
func deferred[Req kmsg.Request](fn func(ctx context.Context, s *Server, req Req) kmsg.Response) handler {
	return func(ctx context.Context, s *Server, req kmsg.Request) func() kmsg.Response {
		r := req.(Req)
		return func() kmsg.Response { return fn(ctx, s, r) }
	}
}
