package protocol

import (
	"context"
	"fmt"
	"maps"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// AlterConfigs, versions 0-2. A topic's explicitly set configs are
// replaced by the request's (a null value leaves that config unset, as in
// Kafka), after every name and value is checked: an unknown config or a bad
// value is INVALID_CONFIG for the whole resource. ValidateOnly checks
// without writing. All topics of one request are written in one log entry.
// Broker configs are the agent's flags and cannot be altered: a broker
// resource answers INVALID_REQUEST, as Kafka does for configs it cannot
// update dynamically. Checked and submitted in phase one, in the
// connection's order (order.go). v2: flexible.
func init() { register(33, 0, 2, twoPhase(handleAlterConfigs)) }

func handleAlterConfigs(ctx context.Context, s *Server, req *kmsg.AlterConfigsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	alters := make([]configAlter, len(req.Resources))
	for i, rr := range req.Resources {
		r := kmsg.NewAlterConfigsResponseResource()
		r.ResourceType, r.ResourceName = rr.ResourceType, rr.ResourceName
		resp.Resources = append(resp.Resources, r)
		configs := rr.Configs
		alters[i] = configAlter{typ: rr.ResourceType, name: rr.ResourceName, change: func(map[string]string) (map[string]string, int16, error) {
			next := map[string]string{}
			seen := map[string]bool{}
			for _, c := range configs {
				if seen[c.Name] {
					return nil, kerr.InvalidRequest.Code, fmt.Errorf("duplicate config %s", c.Name)
				}
				seen[c.Name] = true
				if !meta.IsTopicConfig(c.Name) {
					return nil, kerr.InvalidConfig.Code, fmt.Errorf("unknown topic config %q", c.Name)
				}
				if c.Value == nil {
					continue
				}
				if err := meta.ValidateTopicConfig(c.Name, *c.Value); err != nil {
					return nil, kerr.InvalidConfig.Code, err
				}
				next[c.Name] = *c.Value
			}
			return next, 0, nil
		}}
	}
	return s.alterConfigs(ctx, req.ValidateOnly, alters, resp, func(i int, code int16, msg string) {
		resp.Resources[i].ErrorCode, resp.Resources[i].ErrorMessage = code, strp(msg)
	})
}

// configAlter is one resource of an AlterConfigs or
// IncrementalAlterConfigs request: change computes a topic's new config
// set from its current one, or an error code and message.
type configAlter struct {
	typ    kmsg.ConfigResourceType
	name   string
	change func(current map[string]string) (map[string]string, int16, error)
}

// alterConfigs is phase one of both: it computes every resource's new
// configs against one view of the state, reports the resources that fail
// to fail, and submits the topics' as one entry (unless validateOnly).
func (s *Server) alterConfigs(ctx context.Context, validateOnly bool, alters []configAlter, resp kmsg.Response,
	fail func(i int, code int16, msg string)) func() kmsg.Response {
	var ops []meta.Op
	var opIndex []int
	z := s.authzOf(ctx)
	s.log.View(func(st *meta.State) {
		for i, a := range alters {
			if code := z.configs(a.typ, a.name, meta.OpAlterConfigs); code != 0 {
				fail(i, code, "Authorization failed.")
				continue
			}
			switch a.typ {
			case kmsg.ConfigResourceTypeTopic:
				t := st.Topic(a.name)
				if t == nil {
					fail(i, kerr.UnknownTopicOrPartition.Code, "Topic '"+a.name+"' does not exist.")
					continue
				}
				if t.Internal() {
					code, msg := internalTopic(t.Name)
					fail(i, code, *msg)
					continue
				}
				next, code, err := a.change(maps.Clone(t.Configs))
				if err != nil {
					fail(i, code, err.Error())
					continue
				}
				ops = append(ops, meta.SetTopicConfigs{Topic: t.ID, Configs: next})
				opIndex = append(opIndex, i)
			case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
				fail(i, kerr.InvalidRequest.Code, "broker configs are set by the agent's flags and cannot be altered")
			default:
				fail(i, kerr.InvalidRequest.Code, "unsupported resource type "+a.typ.String())
			}
		}
	})
	if validateOnly {
		ops = nil
	}
	return whenApplied(ctx, s.submit(ctx, ops...), len(ops), resp, func(k int, err error) {
		fail(opIndex[k], errorCode(err), err.Error())
	})
}
