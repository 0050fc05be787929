package harness

import (
	"strings"
	"testing"
)

func TestParseVmHWM(t *testing.T) {
	got, err := parseVmHWM(strings.NewReader("Name:\tbarge\nVmPeak:\t 900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t 1000 kB\n"))
	if err != nil || got != 2048<<10 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := parseVmHWM(strings.NewReader("Name: x\n")); err == nil {
		t.Fatal("missing VmHWM accepted")
	}
}
