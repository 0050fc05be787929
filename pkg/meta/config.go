package meta

import (
	"fmt"
	"strconv"
	"strings"
)

// TopicConfig describes one topic-level config Kafka defines: its default
// and how to check a value. Barge accepts every Kafka topic config name so
// that tools which set them keep working; those marked Inert are stored and
// reported but have no effect, because the bucket replaces the disk and the
// replicas they tune.
type TopicConfig struct {
	Name    string
	Default string
	Check   func(string) error
	Inert   bool
}

func isLong(min int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			return fmt.Errorf("value %q must be an integer >= %d", v, min)
		}
		return nil
	}
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		for _, ok := range vals {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("value %q must be one of %s", v, strings.Join(vals, ", "))
	}
}

func isRatio(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		return fmt.Errorf("value %q must be a number in [0, 1]", v)
	}
	return nil
}

func isBool(v string) error { return oneOf("true", "false")(v) }

func isPolicy(v string) error {
	for _, p := range strings.Split(v, ",") {
		if err := oneOf("delete", "compact")(strings.TrimSpace(p)); err != nil {
			return err
		}
	}
	return nil
}

func anything(string) error { return nil }

// TopicConfigs lists the topic configs with Apache Kafka's defaults.
var TopicConfigs = []TopicConfig{
	{Name: "cleanup.policy", Default: "delete", Check: isPolicy},
	{Name: "compression.type", Default: "producer", Check: oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")},
	{Name: "delete.retention.ms", Default: "86400000", Check: isLong(0)},
	{Name: "file.delete.delay.ms", Default: "60000", Check: isLong(0), Inert: true},
	{Name: "flush.messages", Default: "9223372036854775807", Check: isLong(1), Inert: true},
	{Name: "flush.ms", Default: "9223372036854775807", Check: isLong(0), Inert: true},
	{Name: "follower.replication.throttled.replicas", Default: "", Check: anything, Inert: true},
	{Name: "index.interval.bytes", Default: "4096", Check: isLong(0), Inert: true},
	{Name: "leader.replication.throttled.replicas", Default: "", Check: anything, Inert: true},
	{Name: "local.retention.bytes", Default: "-2", Check: isLong(-2), Inert: true},
	{Name: "local.retention.ms", Default: "-2", Check: isLong(-2), Inert: true},
	{Name: "max.compaction.lag.ms", Default: "9223372036854775807", Check: isLong(1)},
	{Name: "max.message.bytes", Default: "1048588", Check: isLong(0)},
	{Name: "message.downconversion.enable", Default: "true", Check: isBool, Inert: true},
	{Name: "message.timestamp.after.max.ms", Default: "3600000", Check: isLong(0)}, // Kafka 4.0's
	{Name: "message.timestamp.before.max.ms", Default: "9223372036854775807", Check: isLong(0)},
	{Name: "message.timestamp.difference.max.ms", Default: "9223372036854775807", Check: isLong(0)},
	{Name: "message.timestamp.type", Default: "CreateTime", Check: oneOf("CreateTime", "LogAppendTime")},
	{Name: "min.cleanable.dirty.ratio", Default: "0.5", Check: isRatio},
	{Name: "min.compaction.lag.ms", Default: "0", Check: isLong(0)},
	{Name: "min.insync.replicas", Default: "1", Check: isLong(1), Inert: true},
	{Name: "preallocate", Default: "false", Check: isBool, Inert: true},
	{Name: "remote.storage.enable", Default: "false", Check: isBool, Inert: true},
	{Name: "retention.bytes", Default: "-1", Check: isLong(-1)},
	{Name: "retention.ms", Default: "604800000", Check: isLong(-1)},
	{Name: "segment.bytes", Default: "1073741824", Check: isLong(14), Inert: true},
	{Name: "segment.index.bytes", Default: "10485760", Check: isLong(4), Inert: true},
	{Name: "segment.jitter.ms", Default: "0", Check: isLong(0), Inert: true},
	{Name: "segment.ms", Default: "604800000", Check: isLong(1), Inert: true},
	{Name: "unclean.leader.election.enable", Default: "false", Check: isBool, Inert: true},
}

var topicConfigByName = func() map[string]*TopicConfig {
	m := make(map[string]*TopicConfig, len(TopicConfigs))
	for i := range TopicConfigs {
		m[TopicConfigs[i].Name] = &TopicConfigs[i]
	}
	return m
}()

// ValidateTopicConfig checks one name and value; the error text is what
// Kafka clients show with INVALID_CONFIG.
func ValidateTopicConfig(name, value string) error {
	c := topicConfigByName[name]
	if c == nil {
		return fmt.Errorf("unknown topic config %q", name)
	}
	if err := c.Check(value); err != nil {
		return fmt.Errorf("invalid value for %s: %w", name, err)
	}
	return nil
}

// Config returns the topic's value for name and whether it was set on the
// topic (false: the default).
func (t *Topic) Config(name string) (string, bool) {
	if v, ok := t.Configs[name]; ok {
		return v, true
	}
	if c := topicConfigByName[name]; c != nil {
		return c.Default, false
	}
	return "", false
}

// ConfigInt returns an integer config, falling back to its default.
func (t *Topic) ConfigInt(name string) int64 {
	v, _ := t.Config(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		d, _ := strconv.ParseInt(topicConfigByName[name].Default, 10, 64)
		return d
	}
	return n
}

// listConfigs are the topic configs whose value is a comma-separated list,
// which IncrementalAlterConfigs may APPEND to and SUBTRACT from.
var listConfigs = map[string]bool{
	"cleanup.policy": true,
	"follower.replication.throttled.replicas": true,
	"leader.replication.throttled.replicas":   true,
}

// IsListConfig reports whether the topic config holds a list.
func IsListConfig(name string) bool { return listConfigs[name] }

// SplitList returns a list config's elements, trimmed, without empty ones.
func SplitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// IsTopicConfig reports whether name is a Kafka topic config.
func IsTopicConfig(name string) bool { return topicConfigByName[name] != nil }

// DefaultTopicConfig returns a topic config's default ("" if unknown).
func DefaultTopicConfig(name string) string {
	if c := topicConfigByName[name]; c != nil {
		return c.Default
	}
	return ""
}
