package main

import (
	"fmt"
	"strings"
)

// The types aws-schema.json holds.
var resources = []string{
	"aws_s3_bucket",
	"aws_s3_bucket_public_access_block",
	"aws_s3_bucket_ownership_controls",
	"aws_s3_bucket_server_side_encryption_configuration",
	"aws_s3_bucket_versioning",
	"aws_s3_bucket_lifecycle_configuration",
	"aws_s3_bucket_policy",
	"aws_iam_role",
	"aws_iam_role_policy",
	"aws_iam_instance_profile",
	"aws_iam_role_policy_attachment",
	"aws_security_group",
	"aws_vpc_security_group_ingress_rule",
	"aws_vpc_security_group_egress_rule",
	"aws_lb",
	"aws_lb_target_group",
	"aws_lb_listener",
	"aws_launch_template",
	"aws_autoscaling_group",
	"aws_autoscaling_policy",
	"aws_autoscaling_lifecycle_hook",
}

var dataSources = []string{
	"aws_ssm_parameter",
	"aws_region",
	"aws_caller_identity",
	"aws_partition",
	"aws_vpc",
	"aws_subnet",
	"aws_availability_zones",
}

// An override corrects what jsii cannot say. Paths are dotted from the
// type's top block, through nested blocks and into the fields of
// object-typed attributes.
//
//	set       a list attribute or list block that is a set
//	computed  an optional attribute the provider also computes
//	sensitive a sensitive attribute
type override struct {
	path, op string
	used     bool
}

func sets(paths ...string) []*override { return ops("set", paths) }

func computed(paths ...string) []*override { return ops("computed", paths) }

func ops(op string, paths []string) []*override {
	var os []*override
	for _, p := range paths {
		os = append(os, &override{path: p, op: op})
	}
	return os
}

func join(lists ...[]*override) []*override {
	var os []*override
	for _, l := range lists {
		os = append(os, l...)
	}
	return os
}

// The instance_requirements block of launch templates and mixed-instance
// policies: its string lists are sets.
func instanceRequirementSets(prefix string) []*override {
	var ps []string
	for _, n := range []string{"accelerator_manufacturers", "accelerator_names", "accelerator_types",
		"allowed_instance_types", "cpu_manufacturers", "excluded_instance_types",
		"instance_generations", "local_storage_types"} {
		ps = append(ps, prefix+"instance_requirements."+n)
	}
	return sets(ps...)
}

// Checked against hashicorp/terraform-provider-aws (internal/provider and
// internal/service/*): TypeSet / SetAttribute / SetNestedBlock, and
// Optional+Computed, for the arguments a module is likely to use or refer
// to. Anything not listed stays as jsii has it: a list, and optional
// without computed.
var providerOverrides = sets(
	"allowed_account_ids", "forbidden_account_ids", "endpoints",
	"ignore_tags.keys", "ignore_tags.key_prefixes",
	"assume_role.policy_arns", "assume_role.transitive_tag_keys",
	"assume_role_with_web_identity.policy_arns",
)

var overrides = map[string][]*override{
	"aws_s3_bucket": join(
		sets("grant", "grant.permissions", "lifecycle_rule.transition",
			"lifecycle_rule.noncurrent_version_transition", "replication_configuration.rules"),
		computed("acceleration_status", "acl", "policy", "request_payer", "object_lock_enabled",
			"bucket_prefix"),
	),
	"aws_s3_bucket_server_side_encryption_configuration": sets("rule"),
	"aws_s3_bucket_lifecycle_configuration": join(
		sets("rule.transition", "rule.noncurrent_version_transition"),
		computed("expected_bucket_owner", "transition_default_minimum_object_size", "rule.prefix"),
	),
	"aws_s3_bucket_versioning": computed("versioning_configuration.mfa_delete"),
	"aws_iam_role": join(
		sets("managed_policy_arns", "inline_policy"),
		computed("managed_policy_arns", "name_prefix"),
	),
	"aws_security_group": join(
		sets("ingress", "egress", "ingress.security_groups", "egress.security_groups"),
		computed("ingress", "egress", "vpc_id", "name_prefix"),
	),
	"aws_lb": join(
		sets("security_groups", "subnets", "subnet_mapping"),
		computed("security_groups", "subnets", "internal", "ip_address_type"),
	),
	"aws_lb_target_group": join(
		sets("load_balancer_arns"),
		computed("connection_termination", "preserve_client_ip", "ip_address_type", "protocol_version",
			"load_balancing_algorithm_type", "load_balancing_anomaly_mitigation",
			"load_balancing_cross_zone_enabled", "name_prefix",
			"health_check.matcher", "health_check.path", "health_check.timeout"),
	),
	"aws_lb_listener": join(
		sets("default_action.forward.target_group"),
		computed("protocol", "ssl_policy", "tcp_idle_timeout_seconds", "default_action.order"),
	),
	"aws_launch_template": join(
		sets("vpc_security_group_ids", "security_group_names", "license_specification",
			"network_interfaces.security_groups", "network_interfaces.ipv4_addresses",
			"network_interfaces.ipv6_addresses", "network_interfaces.ipv4_prefixes",
			"network_interfaces.ipv6_prefixes"),
		instanceRequirementSets(""),
		computed("default_version", "name_prefix",
			"metadata_options.http_endpoint", "metadata_options.http_protocol_ipv6",
			"metadata_options.http_put_response_hop_limit", "metadata_options.http_tokens",
			"metadata_options.instance_metadata_tags"),
	),
	"aws_autoscaling_group": join(
		sets("availability_zones", "enabled_metrics", "load_balancers", "suspended_processes",
			"target_group_arns", "vpc_zone_identifier", "tag", "traffic_source",
			"initial_lifecycle_hook", "instance_refresh.triggers"),
		instanceRequirementSets("mixed_instances_policy.launch_template.override."),
		computed("availability_zones", "default_cooldown", "desired_capacity", "health_check_type",
			"load_balancers", "service_linked_role_arn", "target_group_arns", "vpc_zone_identifier",
			"name_prefix", "initial_lifecycle_hook.default_result",
			"launch_template.id", "launch_template.name", "launch_template.version"),
	),
	"aws_autoscaling_policy": join(
		sets("step_adjustment"),
		computed("metric_aggregation_type"),
	),
	"aws_autoscaling_lifecycle_hook": computed("default_result"),
	"data.aws_ssm_parameter":         ops("sensitive", []string{"value"}),
	"data.aws_availability_zones": sets("exclude_names", "exclude_zone_ids", "group_names", "filter",
		"filter.values"),
	"data.aws_vpc":    sets("filter", "filter.values"),
	"data.aws_subnet": sets("filter", "filter.values"),
}

func applyOverrides(typ string, b *block, os []*override) {
	for _, o := range os {
		if err := apply(b, strings.Split(o.path, "."), o.op); err != nil {
			panic(fmt.Sprintf("override %s %s.%s: %v", o.op, typ, o.path, err))
		}
		o.used = true
	}
}

func checkOverridesUsed() error {
	for typ, os := range overrides {
		for _, o := range os {
			if !o.used {
				return fmt.Errorf("override %s %s.%s: type not generated", o.op, typ, o.path)
			}
		}
	}
	return nil
}

func apply(b *block, path []string, op string) error {
	name := path[0]
	if nb, ok := b.blocks[name]; ok {
		if len(path) > 1 {
			return apply(nb.block, path[1:], op)
		}
		if op != "set" {
			return fmt.Errorf("%s is a block", name)
		}
		if nb.mode != "list" {
			return fmt.Errorf("%s nests as %s, not list", name, nb.mode)
		}
		nb.mode = "set"
		return nil
	}
	a, ok := b.attrs[name]
	if !ok {
		return fmt.Errorf("no attribute or block %q", name)
	}
	if len(path) > 1 {
		t, err := setInType(a.ty, path[1:], op)
		if err != nil {
			return err
		}
		a.ty = t
		return nil
	}
	switch op {
	case "set":
		t, err := setInType(a.ty, nil, op)
		if err != nil {
			return err
		}
		a.ty = t
	case "computed":
		if !a.optional {
			return fmt.Errorf("%s is not optional", name)
		}
		a.computed = true
	case "sensitive":
		a.sensitive = true
	default:
		return fmt.Errorf("unknown op %q", op)
	}
	return nil
}

// setInType turns the list at path (nil: the type itself) inside a cty
// type into a set.
func setInType(t any, path []string, op string) (any, error) {
	if op != "set" {
		return nil, fmt.Errorf("%s inside an object type", op)
	}
	l, ok := t.([]any)
	if !ok {
		return nil, fmt.Errorf("type %v is primitive", t)
	}
	switch l[0] {
	case "list", "set":
		if len(path) == 0 {
			if l[0] != "list" {
				return nil, fmt.Errorf("already a set")
			}
			return []any{"set", l[1]}, nil
		}
		e, err := setInType(l[1], path, op)
		if err != nil {
			return nil, err
		}
		return []any{l[0], e}, nil
	case "object":
		if len(path) == 0 {
			return nil, fmt.Errorf("an object, not a list")
		}
		fields := l[1].(map[string]any)
		f, ok := fields[path[0]]
		if !ok {
			return nil, fmt.Errorf("object has no field %q", path[0])
		}
		nf, err := setInType(f, path[1:], op)
		if err != nil {
			return nil, err
		}
		fields[path[0]] = nf
		return t, nil
	}
	return nil, fmt.Errorf("type %v", t)
}
