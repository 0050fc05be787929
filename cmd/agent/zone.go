package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// auto, as --zone, --advertise or --peer-advertise, asks for the value
// from the instance metadata service.
const auto = "auto"

// imdsTimeout bounds each start-up lookup: off EC2 the address does not
// answer at all, and an agent should say so, not hang.
const imdsTimeout = 10 * time.Second

// instanceMetadata reads one meta-data path from EC2 instance metadata
// (IMDSv2: a session token first, then the path; at
// AWS_EC2_METADATA_SERVICE_ENDPOINT when set, as the AWS SDKs read it).
func instanceMetadata(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, imdsTimeout)
	defer cancel()
	out, err := imds.New(imds.Options{}).GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", err
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 256))
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("instance metadata gave an empty %s", path)
	}
	return v, nil
}

// resolveZone returns the agent's zone: the --zone flag's value, or with
// "auto" the instance's availability zone from EC2 instance metadata.
func resolveZone(ctx context.Context, zone string) (string, error) {
	if zone != auto {
		return zone, nil
	}
	az, err := instanceMetadata(ctx, "placement/availability-zone")
	if err != nil {
		return "", fmt.Errorf("--zone auto: reading the availability zone from EC2 instance metadata: %w", err)
	}
	return az, nil
}

// resolveAddrs replaces an "auto" --advertise or --peer-advertise with
// the instance's private IPv4 address from EC2 instance metadata
// (local-ipv4) and the port of --listen. It is "auto" for --advertise when
// each agent is reached at its own address (direct mode), and for
// --peer-advertise when --advertise is a load balancer's (shared mode).
func (c *config) resolveAddrs(ctx context.Context) error {
	flag := "--advertise"
	switch {
	case c.Advertise == auto:
	case c.PeerAdvertise == auto:
		flag = "--peer-advertise"
	default:
		return nil
	}
	_, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("%s auto: --listen %q: %w", flag, c.Listen, err)
	}
	v, err := instanceMetadata(ctx, "local-ipv4")
	if err != nil {
		return fmt.Errorf("%s auto: reading the private IPv4 address from EC2 instance metadata: %w", flag, err)
	}
	ip := net.ParseIP(v)
	if ip == nil || ip.To4() == nil {
		return fmt.Errorf("%s auto: instance metadata gave %q for local-ipv4, not an IPv4 address", flag, v)
	}
	addr := net.JoinHostPort(ip.String(), port)
	if c.Advertise == auto {
		c.Advertise = addr
	}
	if c.PeerAdvertise == auto {
		c.PeerAdvertise = addr
	}
	return nil
}
