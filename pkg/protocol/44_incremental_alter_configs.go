package protocol

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// IncrementalAlterConfigs, versions 0-1 (KIP-339). Each config of a topic
// is SET, DELETEd (back to the default), or for list configs
// (cleanup.policy, the throttled-replica lists) APPENDed to or SUBTRACTed
// from, starting from the current value or the default; the others are
// left as they are. APPEND or SUBTRACT on a config that is not a list, an
// unknown config or a bad resulting value is INVALID_CONFIG; a config named
// twice or a null value to SET is INVALID_REQUEST, as in Kafka. The rest is
// as AlterConfigs (phase one included). v1: flexible.
func init() { register(44, 0, 1, twoPhase(handleIncrementalAlterConfigs)) }

func handleIncrementalAlterConfigs(ctx context.Context, s *Server, req *kmsg.IncrementalAlterConfigsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	alters := make([]configAlter, len(req.Resources))
	for i, rr := range req.Resources {
		r := kmsg.NewIncrementalAlterConfigsResponseResource()
		r.ResourceType, r.ResourceName = rr.ResourceType, rr.ResourceName
		resp.Resources = append(resp.Resources, r)
		configs := rr.Configs
		alters[i] = configAlter{typ: rr.ResourceType, name: rr.ResourceName, change: func(cur map[string]string) (map[string]string, int16, error) {
			if cur == nil {
				cur = map[string]string{}
			}
			seen := map[string]bool{}
			for _, c := range configs {
				if seen[c.Name] {
					return nil, kerr.InvalidRequest.Code, fmt.Errorf("duplicate config %s", c.Name)
				}
				seen[c.Name] = true
				if !meta.IsTopicConfig(c.Name) {
					return nil, kerr.InvalidConfig.Code, fmt.Errorf("unknown topic config %q", c.Name)
				}
				if c.Value == nil && c.Op != kmsg.IncrementalAlterConfigOpDelete {
					return nil, kerr.InvalidRequest.Code, fmt.Errorf("null value not supported for %s", c.Name)
				}
				switch c.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					cur[c.Name] = *c.Value
				case kmsg.IncrementalAlterConfigOpDelete:
					delete(cur, c.Name)
				case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
					if !meta.IsListConfig(c.Name) {
						return nil, kerr.InvalidConfig.Code, fmt.Errorf("config %s is not a list: %s is not allowed", c.Name, c.Op)
					}
					v, ok := cur[c.Name]
					if !ok {
						v = meta.DefaultTopicConfig(c.Name)
					}
					list := meta.SplitList(v)
					for _, x := range meta.SplitList(*c.Value) {
						if c.Op == kmsg.IncrementalAlterConfigOpAppend && !slices.Contains(list, x) {
							list = append(list, x)
						} else if c.Op == kmsg.IncrementalAlterConfigOpSubtract {
							list = slices.DeleteFunc(list, func(y string) bool { return y == x })
						}
					}
					cur[c.Name] = strings.Join(list, ",")
				default:
					return nil, kerr.InvalidRequest.Code, fmt.Errorf("unknown config operation %d", c.Op)
				}
			}
			for _, c := range configs {
				if v, ok := cur[c.Name]; ok {
					if err := meta.ValidateTopicConfig(c.Name, v); err != nil {
						return nil, kerr.InvalidConfig.Code, err
					}
				}
			}
			return cur, 0, nil
		}}
	}
	return s.alterConfigs(ctx, req.ValidateOnly, alters, resp, func(i int, code int16, msg string) {
		resp.Resources[i].ErrorCode, resp.Resources[i].ErrorMessage = code, strp(msg)
	})
}
