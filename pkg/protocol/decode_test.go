package protocol

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// frame encodes req as a client would, without the size prefix.
func frame(req kmsg.Request, corr int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 6)
	b = append(b, "client"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

// seedFrames returns a default request of every served API at its lowest
// and highest served version.
func seedFrames() [][]byte {
	var out [][]byte
	for key, a := range apis {
		for _, v := range []int16{a.minV, a.maxV} {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			out = append(out, frame(req, 42))
		}
	}
	return out
}

func TestDecodeServedVersions(t *testing.T) {
	c := &conn{s: &Server{metrics: newMetrics(nil)}}
	for _, f := range seedFrames() {
		in, req, h, err := c.decode(f)
		if err != nil || req == nil || h == nil {
			t.Fatalf("decode %s v%d: %v", kmsg.NameForKey(int16(binary.BigEndian.Uint16(f))), binary.BigEndian.Uint16(f[2:]), err)
		}
		if in.correlationID != 42 || req.Key() != in.key || req.GetVersion() != in.version {
			t.Fatalf("header misread: %+v", in)
		}
	}
}

func TestDecodeUnsupported(t *testing.T) {
	c := &conn{s: &Server{metrics: newMetrics(nil)}}
	for _, f := range [][]byte{
		{0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff}, // key 999
		{0, 0, 0, 99, 0, 0, 0, 2, 0xff, 0xff},      // Produce v99
	} {
		in, req, _, err := c.decode(f)
		if err != nil || req != nil || len(in.raw) != 2 || binary.BigEndian.Uint16(in.raw) != 35 {
			t.Fatalf("decode %x: %v %v %x, want a pre-encoded UNSUPPORTED_VERSION", f, err, req, in.raw)
		}
	}
}

// FuzzDecodeRequest: no frame, however malformed, panics the decoder; it
// either decodes, answers UNSUPPORTED_VERSION, or reports an error (which
// closes only that connection). A frame that decodes re-encodes to a
// fixed point: what the handlers see is what the bytes said, nothing the
// decoder invented or dropped on the way, and a canonical frame (every
// seed, as a client encodes it) re-encodes to exactly its own bytes.
func FuzzDecodeRequest(f *testing.F) {
	for _, fr := range seedFrames() {
		f.Add(fr)
	}
	c := &conn{s: &Server{metrics: newMetrics(nil)}}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 8 { // the read loop never hands decode less
			return
		}
		in, req, _, err := c.decode(b)
		if err == nil && req == nil && in.raw == nil {
			t.Fatal("neither a request nor an answer")
		}
		if err != nil || req == nil {
			return
		}
		if in.key != req.Key() || in.version != req.GetVersion() || in.correlationID != int32(binary.BigEndian.Uint32(b[4:])) {
			t.Fatalf("header misread: %+v", in)
		}
		once := reencode(t, b, req)
		_, again, _, err := c.decode(once)
		if err != nil || again == nil {
			t.Fatalf("the re-encoded %s v%d does not decode: %v\n%x", kmsg.NameForKey(in.key), in.version, err, once)
		}
		if twice := reencode(t, once, again); !bytes.Equal(once, twice) {
			t.Fatalf("%s v%d is not a fixed point of decode and encode:\n%x\n%x", kmsg.NameForKey(in.key), in.version, once, twice)
		}
		if canonical[string(b)] && !bytes.Equal(b, once) {
			t.Fatalf("the canonical %s v%d re-encodes differently:\n%x\n%x", kmsg.NameForKey(in.key), in.version, b, once)
		}
	})
}

// canonical holds the seed frames, which must survive decode and encode
// byte for byte.
var canonical = func() map[string]bool {
	m := map[string]bool{}
	for _, fr := range seedFrames() {
		m[string(fr)] = true
	}
	return m
}()

// reencode returns frame b's request header, as read, followed by req
// encoded again.
func reencode(t *testing.T, b []byte, req kmsg.Request) []byte {
	rest := b[8:]
	idLen := int(int16(binary.BigEndian.Uint16(rest)))
	rest = rest[2+max(idLen, 0):]
	if req.IsFlexible() {
		var err error
		if rest, err = skipTags(rest); err != nil {
			t.Fatalf("a decoded frame's header tags: %v", err)
		}
	}
	header := b[:len(b)-len(rest)]
	return req.AppendTo(append([]byte(nil), header...))
}
