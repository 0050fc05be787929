package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUserDataCommandLine renders deploy/terraform's user data with
// terraform itself, for both advertise modes, and parses the agent command
// line in its systemd unit with the agent's own flag parser, so that the
// module and the flags cannot drift apart.
func TestUserDataCommandLine(t *testing.T) {
	tf := terraformBinary(t)
	tmpl, err := filepath.Abs("../../deploy/terraform/templates/user_data.sh.tftpl")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode                   string
		advertise, peer, store string
	}{
		{"shared", "barge-0123.elb.eu-west-1.amazonaws.com:9092", "auto", "s3://data-bucket/prod?region=eu-west-1"},
		{"direct", "auto", "", "s3://data-bucket?region=eu-west-1"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			dir := t.TempDir()
			root := `output "user_data" {
  value = templatefile(` + strconvQuote(tmpl) + `, {
    agent_url            = "https://downloads.example.com/barge-agent"
    agent_sha256         = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    kafka_port           = 9092
    http_port            = 9644
    store_url            = ` + strconvQuote(c.store) + `
    advertise_mode       = ` + strconvQuote(c.mode) + `
    lb_dns_name          = "barge-0123.elb.eu-west-1.amazonaws.com"
    drain_seconds        = 45
    stop_timeout_seconds = 60
    extra_args           = ["--flush-interval=100ms", "--jobs=false"]
    region               = "eu-west-1"
    asg_name             = "barge-agents"
    hook_name            = "drain"
    security_secret_arn  = ""
  })
}
`
			if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(root), 0o644); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) []byte {
				t.Helper()
				cmd := exec.Command(tf, args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return out
			}
			run("init", "-input=false", "-backend=false")
			run("apply", "-auto-approve", "-input=false")
			var outputs map[string]struct{ Value string }
			if err := json.Unmarshal(run("output", "-json"), &outputs); err != nil {
				t.Fatal(err)
			}
			userData := outputs["user_data"].Value

			const exe = "ExecStart=/usr/local/bin/barge-agent "
			var line string
			for _, l := range strings.Split(userData, "\n") {
				if strings.HasPrefix(l, exe) {
					line = strings.TrimPrefix(l, exe)
				}
			}
			if line == "" {
				t.Fatalf("no %q line in the user data:\n%s", exe, userData)
			}
			// systemd splits $TLS_ARGS, from the unit's environment file,
			// into the files the boot script wrote from the secret.
			if !strings.HasPrefix(line, "$TLS_ARGS ") {
				t.Fatalf("the command line %q does not begin with $TLS_ARGS", line)
			}
			line = strings.Replace(line, "$TLS_ARGS", "--tls-cert-file=/etc/barge/tls_cert.pem --tls-key-file=/etc/barge/tls_key.pem", 1)
			cfg, err := parseConfig(strings.Fields(line), func(string) string { return "" })
			if err != nil {
				t.Fatalf("the agent refuses the user data's command line %q: %v", line, err)
			}
			want := config{Listen: "0.0.0.0:9092", HTTP: "0.0.0.0:9644", Store: c.store, Zone: "auto", Advertise: c.advertise}
			got := config{Listen: cfg.Listen, HTTP: cfg.HTTP, Store: cfg.Store, Zone: cfg.Zone, Advertise: cfg.Advertise}
			if got != want {
				t.Fatalf("command line %q parses to %+v, want %+v", line, got, want)
			}
			if c.peer != "" && cfg.PeerAdvertise != c.peer {
				t.Fatalf("--peer-advertise %q, want %q", cfg.PeerAdvertise, c.peer)
			}
			if cfg.DrainTimeout != 45*time.Second || cfg.FlushInterval != 100*time.Millisecond || cfg.Jobs {
				t.Fatalf("drain %v, flush %v, jobs %v: want 45s, 100ms, false (the unit's flags and extra_args)", cfg.DrainTimeout, cfg.FlushInterval, cfg.Jobs)
			}
			if cfg.Security.TLSCert != "/etc/barge/tls_cert.pem" || cfg.Security.TLSKey != "/etc/barge/tls_key.pem" {
				t.Fatalf("TLS flags %+v", cfg.Security)
			}
			if !strings.Contains(userData, "TimeoutStopSec=60") {
				t.Fatal("the unit's stop timeout is not the one given")
			}
		})
	}
}

// terraformBinary finds terraform on PATH or where make deps installs it.
func terraformBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("terraform"); err == nil {
		return p
	}
	if p, err := filepath.Abs("../../.tools/bin/terraform"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("terraform is not installed: make deps installs it")
	return ""
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s) // an HCL string literal for these plain values
	return string(b)
}
