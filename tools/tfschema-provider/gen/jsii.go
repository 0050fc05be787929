package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
)

// The parts of a jsii assembly (the .jsii file of a CDK for Terraform
// provider package) that the generator reads.

type assembly struct {
	Name    string               `json:"name"`
	Version string               `json:"version"`
	License string               `json:"license"`
	Types   map[string]*jsiiType `json:"types"`
}

type jsiiType struct {
	FQN        string          `json:"fqn"`
	Kind       string          `json:"kind"` // class, interface, enum
	Base       string          `json:"base"`
	Datatype   bool            `json:"datatype"`
	Docs       jsiiDocs        `json:"docs"`
	Properties []*jsiiProperty `json:"properties"`
	Init       *struct {
		Parameters []struct {
			Name string  `json:"name"`
			Type typeRef `json:"type"`
		} `json:"parameters"`
	} `json:"initializer"`
}

type jsiiDocs struct {
	Summary string `json:"summary"`
	Remarks string `json:"remarks"`
}

type jsiiProperty struct {
	Name      string   `json:"name"`
	Optional  bool     `json:"optional"`
	Immutable bool     `json:"immutable"`
	Static    bool     `json:"static"`
	Docs      jsiiDocs `json:"docs"`
	Type      typeRef  `json:"type"`
}

type typeRef struct {
	Primitive  string `json:"primitive"`
	FQN        string `json:"fqn"`
	Collection *struct {
		Kind        string  `json:"kind"` // array, map
		ElementType typeRef `json:"elementtype"`
	} `json:"collection"`
	Union *struct {
		Types []typeRef `json:"types"`
	} `json:"union"`
}

const resolvable = "cdktn.IResolvable"

// unwrap drops the IResolvable arm of a union ("T | IResolvable" is how
// jsii spells "T, or an expression").
func (t typeRef) unwrap() typeRef {
	if t.Union == nil {
		return t
	}
	var rest []typeRef
	for _, u := range t.Union.Types {
		if u.FQN != resolvable && u.FQN != "cdktf.IResolvable" {
			rest = append(rest, u)
		}
	}
	if len(rest) == 1 {
		return rest[0]
	}
	return t
}

func (t typeRef) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

// readPackage returns the .jsii and package.json of an npm package tarball.
func readPackage(tgz string) (jsii, pkgJSON []byte, err error) {
	f, err := os.Open(tgz)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		switch path.Clean(h.Name) {
		case "package/.jsii":
			if jsii, err = io.ReadAll(tr); err != nil {
				return nil, nil, err
			}
		case "package/package.json":
			if pkgJSON, err = io.ReadAll(tr); err != nil {
				return nil, nil, err
			}
		}
	}
	if jsii == nil || pkgJSON == nil {
		return nil, nil, fmt.Errorf("%s: no package/.jsii or package/package.json", tgz)
	}
	return jsii, pkgJSON, nil
}

var (
	docLinkRE = regexp.MustCompile(`docs/(resources|data-sources)/([a-z0-9_]+)[ }#]`)
	argLinkRE = regexp.MustCompile(`#([a-z0-9_]+) `)
)

// tfName is the Terraform name of a config property: the anchor of its
// registry link when it has one (this undoes renames such as self ->
// selfAttribute), else the camelCase name in snake_case.
func tfName(p *jsiiProperty) string {
	for _, s := range []string{p.Docs.Summary, p.Docs.Remarks} {
		if m := argLinkRE.FindStringSubmatch(s); m != nil {
			return m[1]
		}
	}
	return snake(p.Name)
}

// snake turns camelCase into snake_case: dnsName -> dns_name,
// enableHttp2 -> enable_http2, ipv6CidrBlock -> ipv6_cidr_block.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r + ('a' - 'A'))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
