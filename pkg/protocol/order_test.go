package protocol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A request whose connection's earlier change is not applied within
// OrderWait is not run: the connection closes after answering what came
// before. The log here never runs, as if the bucket hung.
func TestOrderWaitClosesConnection(t *testing.T) {
	_, log := openLog(t)
	s := New(Config{OrderWait: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}, log, nil, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go s.Serve(ln)

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Minute))
	create := kmsg.NewPtrCreateTopicsRequest()
	create.SetVersion(4)
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "never", 1, 1
	create.Topics = append(create.Topics, ct)
	versions := kmsg.NewPtrApiVersionsRequest()
	var b []byte
	for i, req := range []kmsg.Request{create, versions} {
		f := frame(req, int32(i))
		b = append(binary.BigEndian.AppendUint32(b, uint32(len(f))), f...)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	var corrs []int32
	for {
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after answers %v: %v, want the connection closed", corrs, err)
			}
			break
		}
		body := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		corrs = append(corrs, int32(binary.BigEndian.Uint32(body)))
	}
	if len(corrs) != 1 || corrs[0] != 0 {
		t.Errorf("answers %v before the connection closed, want only the CreateTopics (0)", corrs)
	}
}
