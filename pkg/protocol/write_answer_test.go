package protocol

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
)

// TestWriteAnswerKeepsOrder writes a buffered answer, a Fetch answer in
// pieces (large enough for writev, in more pieces than one writev call
// takes), a small one in pieces and another buffered answer, over real TCP
// and over a pipe (no writev): the peer reads them in order, byte for byte.
func TestWriteAnswerKeepsOrder(t *testing.T) {
	big := bytes.Repeat([]byte("r"), 300<<10)
	var many net.Buffers // 2,050 pieces: three writev calls
	for i := range 1025 {
		many = append(many, []byte{byte(i)}, big[:1000])
	}
	answers := []net.Buffers{
		{[]byte("first answer")},
		{[]byte("head"), big, []byte("between"), big[:1000], []byte("tail")},
		many,
		{[]byte("small"), []byte("fetch answer")},
		{[]byte("last answer")},
	}
	var want []byte
	for _, a := range answers {
		for _, b := range a {
			want = append(want, b...)
		}
	}
	pair := map[string]func(t *testing.T) (net.Conn, net.Conn){
		"tcp": func(t *testing.T) (net.Conn, net.Conn) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, _ := ln.Accept()
				accepted <- c
			}()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			server := <-accepted
			if server == nil {
				t.Fatal("accept failed")
			}
			return server, client
		},
		"pipe": func(*testing.T) (net.Conn, net.Conn) { return net.Pipe() },
	}
	for name, open := range pair {
		t.Run(name, func(t *testing.T) {
			server, client := open(t)
			defer client.Close()
			got := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(client)
				got <- b
			}()
			w := bufio.NewWriterSize(server, 64<<10)
			for _, a := range answers {
				if err := writeAnswer(w, server, append(net.Buffers(nil), a...)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			server.Close()
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("peer read %d bytes, not the %d written in order", len(b), len(want))
			}
		})
	}
}

// noWritev hides the connection's type, so that writeAnswer takes the
// path it takes over TLS: every piece through the bufio.Writer.
type noWritev struct{ net.Conn }

// BenchmarkWriteAnswer writes a catching-up consumer's Fetch answer, 52 MiB
// in 416 cached chunks with a partition header before each, over loopback
// TCP to a reader that takes it all.
func BenchmarkWriteAnswer(b *testing.B) {
	chunk := bytes.Repeat([]byte("r"), 128<<10)
	var answer net.Buffers
	for range 416 {
		answer = append(answer, make([]byte, 40), chunk)
	}
	size := int64(416 * (40 + len(chunk)))
	for _, bc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{
		{"writev", func(c net.Conn) net.Conn { return c }},
		{"bufio", func(c net.Conn) net.Conn { return noWritev{c} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				// Read each answer into one buffer of its size, as
				// franz-go does (io.ReadFull), not 8 KiB at a time.
				buf := make([]byte, size)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
				}
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			conn := bc.wrap(nc)
			w := bufio.NewWriterSize(conn, 64<<10)
			out := make(net.Buffers, 0, len(answer))
			b.SetBytes(size)
			for b.Loop() {
				if err := writeAnswer(w, conn, append(out[:0], answer...)); err != nil {
					b.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
