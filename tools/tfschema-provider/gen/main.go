// Command gen writes aws-schema.json, the schema the stand-in provider
// serves, from the jsii type file of a CDK for Terraform build of the AWS
// provider (npm @cdktn/provider-aws, MPL-2.0). It runs `npm pack` for the
// pinned version into a temporary directory unless -tgz names a tarball
// already fetched.
//
//	go generate            # in tools/tfschema-provider
//	go run ./gen -tgz /tmp/cdktn-provider-aws-25.7.0.tgz
//
// jsii does not say everything a provider schema does: it cannot tell a
// set from a list, nor an optional attribute from an optional+computed one.
// overrides.go corrects those for the types listed there, checked by hand
// against the provider's source; README.md says how.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bargehq/barge/tools/tfschema-provider/schema"
)

const providerAddr = "registry.terraform.io/hashicorp/aws"

func main() {
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	pkg := flag.String("pkg", "@cdktn/provider-aws", "npm package holding the provider's .jsii")
	version := flag.String("version", "25.7.0", "version of -pkg")
	tgz := flag.String("tgz", "", "an already fetched tarball of -pkg@-version (skips npm pack)")
	out := flag.String("out", "aws-schema.json", "file to write")
	flag.Parse()

	if *tgz == "" {
		dir, err := os.MkdirTemp("", "tfschema-gen-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("npm", "pack", "--silent", "--pack-destination", dir, *pkg+"@"+*version)
		cmd.Dir = dir
		cmd.Stderr = os.Stderr
		name, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("npm pack %s@%s: %v", *pkg, *version, err)
		}
		*tgz = filepath.Join(dir, strings.TrimSpace(string(name)))
	}
	jsiiData, pkgData, err := readPackage(*tgz)
	if err != nil {
		return err
	}
	var pj struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		License string `json:"license"`
		CDKTF   struct {
			Provider struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"provider"`
		} `json:"cdktf"`
	}
	if err := json.Unmarshal(pkgData, &pj); err != nil {
		return fmt.Errorf("package.json: %v", err)
	}
	if pj.Name != *pkg || pj.Version != *version {
		return fmt.Errorf("tarball holds %s@%s, want %s@%s", pj.Name, pj.Version, *pkg, *version)
	}
	if pj.CDKTF.Provider.Name != providerAddr {
		return fmt.Errorf("package wraps %q, want %s", pj.CDKTF.Provider.Name, providerAddr)
	}
	var asm assembly
	if err := json.Unmarshal(jsiiData, &asm); err != nil {
		return fmt.Errorf(".jsii: %v", err)
	}
	jsiiData = nil

	g := newGen(&asm)
	prov := &schema.Provider{
		ResourceSchemas:   map[string]*schema.Schema{},
		DataSourceSchemas: map[string]*schema.Schema{},
	}
	b, err := g.provider()
	if err != nil {
		return err
	}
	applyOverrides("provider", b, providerOverrides)
	prov.Provider = &schema.Schema{Block: b.export()}
	for _, name := range resources {
		b, err := g.typ("resources", name)
		if err != nil {
			return err
		}
		markComputed(b, false)
		applyOverrides(name, b, overrides[name])
		prov.ResourceSchemas[name] = &schema.Schema{Block: b.export()}
	}
	for _, name := range dataSources {
		b, err := g.typ("data-sources", name)
		if err != nil {
			return err
		}
		markComputed(b, true)
		applyOverrides("data."+name, b, overrides["data."+name])
		prov.DataSourceSchemas[name] = &schema.Schema{Block: b.export()}
	}
	if err := checkOverridesUsed(); err != nil {
		return err
	}
	for _, w := range g.notes {
		log.Print(w)
	}

	f := schema.File{
		FormatVersion: "1.0",
		Source: &schema.Source{
			Package:         pj.Name,
			PackageVersion:  pj.Version,
			License:         pj.License,
			Provider:        pj.CDKTF.Provider.Name,
			ProviderVersion: pj.CDKTF.Provider.Version,
			Generator:       "tools/tfschema-provider/gen (go generate)",
		},
		ProviderSchemas: map[string]*schema.Provider{providerAddr: prov},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", " ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s: %s@%s (%s %s), %d resources, %d data sources, %d bytes",
		*out, pj.Name, pj.Version, pj.CDKTF.Provider.Name, pj.CDKTF.Provider.Version,
		len(prov.ResourceSchemas), len(prov.DataSourceSchemas), buf.Len())
	return nil
}

// block, attr and nested are the schema while it is built; export turns
// them into the JSON form.
type block struct {
	attrs  map[string]*attr
	blocks map[string]*nested
}

type attr struct {
	ty                                      any // cty type in JSON form
	required, optional, computed, sensitive bool
}

type nested struct {
	mode     string
	min, max int64
	block    *block
}

func newBlock() *block {
	return &block{attrs: map[string]*attr{}, blocks: map[string]*nested{}}
}

func (b *block) export() *schema.Block {
	out := &schema.Block{DescriptionKind: "plain"}
	if len(b.attrs) > 0 {
		out.Attributes = map[string]*schema.Attribute{}
	}
	for n, a := range b.attrs {
		ty, err := json.Marshal(a.ty)
		if err != nil {
			panic(err)
		}
		out.Attributes[n] = &schema.Attribute{
			Type: ty, Required: a.required, Optional: a.optional,
			Computed: a.computed, Sensitive: a.sensitive, DescriptionKind: "plain",
		}
	}
	if len(b.blocks) > 0 {
		out.BlockTypes = map[string]*schema.BlockType{}
	}
	for n, nb := range b.blocks {
		out.BlockTypes[n] = &schema.BlockType{NestingMode: nb.mode, Block: nb.block.export(), MinItems: nb.min, MaxItems: nb.max}
	}
	return out
}

type gen struct {
	asm     *assembly
	prefix  string // "@cdktn/provider-aws."
	classes map[string]string
	notes   []string
}

func newGen(asm *assembly) *gen {
	g := &gen{asm: asm, prefix: asm.Name + ".", classes: map[string]string{}}
	for fqn, t := range asm.Types {
		if t.Kind != "class" {
			continue
		}
		switch {
		case strings.HasSuffix(t.Base, ".TerraformProvider"):
			g.classes["provider"] = fqn
		case strings.HasSuffix(t.Base, ".TerraformResource"), strings.HasSuffix(t.Base, ".TerraformDataSource"):
			if m := docLinkRE.FindStringSubmatch(t.Docs.Summary); m != nil {
				g.classes[m[1]+"/aws_"+m[2]] = fqn
			}
		}
	}
	return g
}

func (g *gen) provider() (*block, error) {
	fqn, ok := g.classes["provider"]
	if !ok {
		return nil, fmt.Errorf("no provider class in %s", g.asm.Name)
	}
	b, err := g.typeClass(fqn, "provider", false)
	if err != nil {
		return nil, err
	}
	delete(b.attrs, "alias") // a meta-argument, not the provider's
	return b, nil
}

func (g *gen) typ(kind, name string) (*block, error) {
	fqn, ok := g.classes[kind+"/"+name]
	if !ok {
		return nil, fmt.Errorf("%s %s: not in %s", kind, name, g.asm.Name)
	}
	return g.typeClass(fqn, name, true)
}

// typeClass builds a resource's (or data source's or provider's) block:
// the arguments of its config interface, then the read-only getters of the
// class, which are the computed-only attributes.
func (g *gen) typeClass(fqn, where string, getters bool) (*block, error) {
	cls := g.asm.Types[fqn]
	if cls.Init == nil {
		return nil, fmt.Errorf("%s: %s has no initializer", where, fqn)
	}
	var cfg string
	for _, p := range cls.Init.Parameters {
		if p.Name == "config" {
			cfg = p.Type.FQN
		}
	}
	if cfg == "" {
		return nil, fmt.Errorf("%s: %s has no config parameter", where, fqn)
	}
	b, err := g.structBlock(cfg, where)
	if err != nil {
		return nil, err
	}
	if getters {
		if err := g.computedGetters(b, fqn, where); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// structBlock is the block of a config or nested-block struct.
func (g *gen) structBlock(fqn, where string) (*block, error) {
	st, ok := g.asm.Types[fqn]
	if !ok || st.Kind != "interface" {
		return nil, fmt.Errorf("%s: struct %s not found", where, fqn)
	}
	b := newBlock()
	for _, p := range st.Properties {
		name := tfName(p)
		at := where + "." + name
		t := p.Type.unwrap()
		elem, isList := t, false
		if t.Collection != nil && t.Collection.Kind == "array" {
			elem, isList = t.Collection.ElementType, true
		}
		if g.isStruct(elem.FQN) {
			if !isBlockDoc(p) {
				// An attribute of object type (an SDKv2 "attributes as
				// blocks" field such as aws_security_group.ingress): its
				// elements are written as blocks but it is an attribute.
				ot, err := g.objectType(elem.FQN, at)
				if err != nil {
					return nil, err
				}
				ty := ot
				if isList {
					ty = []any{"list", ot}
				}
				b.attrs[name] = &attr{ty: ty, required: !p.Optional, optional: p.Optional}
				g.notes = append(g.notes, "attribute-style (not a block): "+at)
				continue
			}
			nb, err := g.structBlock(elem.FQN, at)
			if err != nil {
				return nil, err
			}
			if err := g.computedGetters(nb, g.outputRef(elem.FQN), at); err != nil {
				return nil, err
			}
			n := &nested{mode: "list", block: nb}
			if !isList {
				n.max = 1
				if name == "timeouts" {
					n.mode, n.max = "single", 0
				}
			}
			if !p.Optional && n.mode != "single" {
				n.min = 1
			}
			b.blocks[name] = n
			continue
		}
		ty, err := g.valueType(p.Type, at)
		if err != nil {
			return nil, err
		}
		b.attrs[name] = &attr{ty: ty, required: !p.Optional, optional: p.Optional}
	}
	return b, nil
}

// computedGetters adds, from a resource class or a block's OutputReference
// class, the getters that have no setter and no xInput twin: the
// computed-only attributes.
func (g *gen) computedGetters(b *block, classFQN, where string) error {
	cls, ok := g.asm.Types[classFQN]
	if !ok {
		return nil
	}
	has := map[string]bool{}
	for _, p := range cls.Properties {
		has[p.Name] = true
	}
	for _, p := range cls.Properties {
		if p.Static || !p.Immutable || strings.HasSuffix(p.Name, "Input") || has[p.Name+"Input"] {
			continue
		}
		name := snake(p.Name)
		if _, dup := b.attrs[name]; dup {
			continue
		}
		if _, dup := b.blocks[name]; dup {
			continue
		}
		ty, err := g.getterType(p.Type, where+"."+name)
		if err != nil {
			return err
		}
		b.attrs[name] = &attr{ty: ty, computed: true}
	}
	return nil
}

func (g *gen) isStruct(fqn string) bool {
	if fqn == "" || !strings.HasPrefix(fqn, g.prefix) {
		return false
	}
	t := g.asm.Types[fqn]
	return t != nil && t.Kind == "interface" && t.Datatype
}

func (g *gen) outputRef(structFQN string) string { return structFQN + "OutputReference" }

func isBlockDoc(p *jsiiProperty) bool {
	return strings.HasSuffix(strings.TrimSpace(p.Docs.Summary), " block.")
}

func primitive(p, where string) (any, error) {
	switch p {
	case "string":
		return "string", nil
	case "number":
		return "number", nil
	case "boolean":
		return "bool", nil
	case "any", "json":
		return "dynamic", nil
	}
	return nil, fmt.Errorf("%s: primitive %q", where, p)
}

// valueType is the cty type of an argument.
func (g *gen) valueType(t typeRef, where string) (any, error) {
	t = t.unwrap()
	switch {
	case t.Primitive != "":
		return primitive(t.Primitive, where)
	case t.Collection != nil:
		e, err := g.valueType(t.Collection.ElementType, where)
		if err != nil {
			return nil, err
		}
		if t.Collection.Kind == "map" {
			return []any{"map", e}, nil
		}
		return []any{"list", e}, nil
	case t.FQN == resolvable || t.FQN == "cdktf.IResolvable":
		return "dynamic", nil
	case g.isStruct(t.FQN):
		return g.objectType(t.FQN, where)
	}
	return nil, fmt.Errorf("%s: unhandled argument type %s", where, t)
}

func (g *gen) objectType(fqn, where string) (any, error) {
	st := g.asm.Types[fqn]
	fields := map[string]any{}
	for _, p := range st.Properties {
		ty, err := g.valueType(p.Type, where+"."+tfName(p))
		if err != nil {
			return nil, err
		}
		fields[tfName(p)] = ty
	}
	return []any{"object", fields}, nil
}

// getterType is the cty type of a read-only getter.
func (g *gen) getterType(t typeRef, where string) (any, error) {
	t = t.unwrap()
	switch {
	case t.Primitive != "":
		return primitive(t.Primitive, where)
	case t.Collection != nil:
		e, err := g.getterType(t.Collection.ElementType, where)
		if err != nil {
			return nil, err
		}
		if t.Collection.Kind == "map" {
			return []any{"map", e}, nil
		}
		return []any{"list", e}, nil
	}
	short := t.FQN[strings.IndexByte(t.FQN, '.')+1:]
	switch short {
	case "IResolvable": // getBooleanAttribute
		return "bool", nil
	case "StringMap":
		return []any{"map", "string"}, nil
	case "NumberMap":
		return []any{"map", "number"}, nil
	case "BooleanMap":
		return []any{"map", "bool"}, nil
	case "AnyMap":
		return []any{"map", "dynamic"}, nil
	}
	if strings.HasPrefix(t.FQN, g.prefix) {
		cls := g.asm.Types[t.FQN]
		if cls == nil {
			return nil, fmt.Errorf("%s: %s not found", where, t.FQN)
		}
		switch {
		case strings.HasSuffix(cls.Base, ".ComplexList"):
			o, err := g.outputObject(strings.TrimSuffix(t.FQN, "List")+"OutputReference", where)
			if err != nil {
				return nil, err
			}
			return []any{"list", o}, nil
		case strings.HasSuffix(cls.Base, ".ComplexMap"):
			o, err := g.outputObject(strings.TrimSuffix(t.FQN, "Map")+"OutputReference", where)
			if err != nil {
				return nil, err
			}
			return []any{"map", o}, nil
		case strings.HasSuffix(cls.Base, ".ComplexObject"):
			return g.outputObject(t.FQN, where)
		}
	}
	return nil, fmt.Errorf("%s: unhandled getter type %s", where, t)
}

// outputObject is the object type of a computed-only nested attribute,
// from the getters of its OutputReference class.
func (g *gen) outputObject(fqn, where string) (any, error) {
	cls := g.asm.Types[fqn]
	if cls == nil {
		return nil, fmt.Errorf("%s: %s not found", where, fqn)
	}
	fields := map[string]any{}
	for _, p := range cls.Properties {
		if p.Static || !p.Immutable || p.Name == "internalValue" {
			continue
		}
		ty, err := g.getterType(p.Type, where+"."+snake(p.Name))
		if err != nil {
			return nil, err
		}
		fields[snake(p.Name)] = ty
	}
	return []any{"object", fields}, nil
}

// markComputed marks the optional arguments that the provider also
// computes, where jsii's shape makes that certain or near enough:
//   - id (every SDKv2 resource's, filled in from the ID);
//   - tags_all, and region (every regional resource has it since v6);
//   - x when x_prefix exists (name/name_prefix, bucket/bucket_prefix);
//   - every optional argument of a data source (they filter, and are
//     read back).
//
// overrides.go adds the rest by hand.
func markComputed(b *block, dataSource bool) {
	for n, a := range b.attrs {
		if !a.optional {
			continue
		}
		_, prefixed := b.attrs[n+"_prefix"]
		if dataSource || n == "id" || n == "tags_all" || n == "region" || prefixed {
			a.computed = true
		}
	}
}
