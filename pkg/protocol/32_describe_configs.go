package protocol

import (
	"context"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// DescribeConfigs, versions 1-4. Topics list every Kafka topic config with
// its value and source (DYNAMIC_TOPIC_CONFIG when set on the topic,
// DEFAULT_CONFIG otherwise); brokers list the settings this agent uses.
// v3: documentation field (left empty); v4: flexible.
func init() { register(32, 1, 4, deferred(handleDescribeConfigs)) }

func handleDescribeConfigs(ctx context.Context, s *Server, req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	z := s.authzOf(ctx)
	for _, rr := range req.Resources {
		r := kmsg.NewDescribeConfigsResponseResource()
		r.ResourceType, r.ResourceName = rr.ResourceType, rr.ResourceName
		if code := z.configs(rr.ResourceType, rr.ResourceName, meta.OpDescribeConfigs); code != 0 {
			r.ErrorCode = code
			resp.Resources = append(resp.Resources, r)
			continue
		}
		want := func(name string) bool { return rr.ConfigNames == nil || slices.Contains(rr.ConfigNames, name) }
		add := func(name, value string, source kmsg.ConfigSource) {
			if !want(name) {
				return
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name, c.Value, c.Source = name, strp(value), source
			c.IsDefault = source == kmsg.ConfigSourceDefaultConfig
			if req.IncludeSynonyms {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = name, strp(value), source
				c.ConfigSynonyms = []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{syn}
			}
			r.Configs = append(r.Configs, c)
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			s.log.View(func(st *meta.State) {
				t := st.Topic(rr.ResourceName)
				if t == nil {
					r.ErrorCode = kerr.UnknownTopicOrPartition.Code
					r.ErrorMessage = strp("Topic '" + rr.ResourceName + "' does not exist.")
					return
				}
				for _, tc := range meta.TopicConfigs {
					v, set := t.Config(tc.Name)
					src := kmsg.ConfigSourceDefaultConfig
					if set {
						src = kmsg.ConfigSourceDynamicTopicConfig
					}
					add(tc.Name, v, src)
				}
			})
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
				r.ErrorCode = kerr.InvalidRequest.Code
				r.ErrorMessage = strp("unexpected broker id " + rr.ResourceName)
				break
			}
			st := kmsg.ConfigSourceStaticBrokerConfig
			add("broker.id", strconv.Itoa(int(s.cfg.NodeID)), st)
			add("auto.create.topics.enable", strconv.FormatBool(s.cfg.AutoCreateTopics), st)
			add("num.partitions", strconv.Itoa(int(s.cfg.DefaultPartitions)), st)
			add("default.replication.factor", strconv.Itoa(int(s.cfg.DefaultReplicas)), st)
			add("socket.request.max.bytes", strconv.Itoa(int(s.cfg.MaxRequestBytes)), st)
			add("advertised.listeners", s.securityProtocol()+"://"+s.cfg.AdvertisedHost+":"+strconv.Itoa(int(s.cfg.AdvertisedPort)), st)
			for _, tc := range meta.TopicConfigs {
				if tc.Name == "max.message.bytes" {
					add("message.max.bytes", tc.Default, kmsg.ConfigSourceDefaultConfig)
				}
			}
		default:
			r.ErrorCode = kerr.InvalidRequest.Code
			r.ErrorMessage = strp("unsupported resource type " + rr.ResourceType.String())
		}
		resp.Resources = append(resp.Resources, r)
	}
	return resp
}
