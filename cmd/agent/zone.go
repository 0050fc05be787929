package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// zoneAuto asks for the zone from the instance metadata service.
const zoneAuto = "auto"

// imdsTimeout bounds the start-up lookup: off EC2 the address does not
// answer at all, and an agent should say so, not hang.
const imdsTimeout = 10 * time.Second

// resolveZone returns the agent's zone: the --zone flag's value, or with
// "auto" the instance's availability zone from EC2 instance metadata
// (IMDSv2, at AWS_EC2_METADATA_SERVICE_ENDPOINT when set, as the AWS SDKs
// read it).
func resolveZone(ctx context.Context, zone string) (string, error) {
	if zone != zoneAuto {
		return zone, nil
	}
	ctx, cancel := context.WithTimeout(ctx, imdsTimeout)
	defer cancel()
	out, err := imds.New(imds.Options{}).GetMetadata(ctx, &imds.GetMetadataInput{Path: "placement/availability-zone"})
	if err != nil {
		return "", fmt.Errorf("--zone auto: reading the availability zone from EC2 instance metadata: %w", err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 256))
	if err != nil {
		return "", fmt.Errorf("--zone auto: %w", err)
	}
	az := strings.TrimSpace(string(b))
	if az == "" {
		return "", fmt.Errorf("--zone auto: instance metadata gave an empty availability zone")
	}
	return az, nil
}
