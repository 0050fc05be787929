// Command fakeagent stands in for cmd/agent in the harness's own tests: it
// takes the agent's flags, creates a file:// store directory, listens on
// --listen and serves /readyz and /healthz on --http until SIGTERM. With
// --unready its /readyz answers 503 (it listens but is not ready).
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	listen := flag.String("listen", "", "")
	flag.String("advertise", "", "")
	httpAddr := flag.String("http", "", "")
	store := flag.String("store", "", "")
	flag.String("flush-interval", "", "")
	exitCode := flag.Int("exit", -1, "exit at once with this code")
	unready := flag.Bool("unready", false, "answer 503 on /readyz")
	flag.Parse()
	fmt.Println("fakeagent", os.Args[1:], "env BARGE_FAKE=", os.Getenv("BARGE_FAKE"))
	if *exitCode >= 0 {
		os.Exit(*exitCode)
	}
	if dir, ok := strings.CutPrefix(*store, "file://"); ok {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			panic(err)
		}
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if *unready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		ok(w, r)
	})
	mux.HandleFunc("/healthz", ok)
	go http.ListenAndServe(*httpAddr, mux)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	fmt.Println("fakeagent: stopping")
}
