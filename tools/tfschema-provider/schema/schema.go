// Package schema is the subset of the `terraform providers schema -json`
// format that aws-schema.json is written in, so a real provider's dump can
// stand in for the generated one.
package schema

import "encoding/json"

// File is the whole document.
type File struct {
	FormatVersion   string               `json:"format_version"`
	Source          *Source              `json:"barge_source,omitempty"`
	ProviderSchemas map[string]*Provider `json:"provider_schemas"`
}

// Source records where a generated file came from.
type Source struct {
	Package         string `json:"package"`
	PackageVersion  string `json:"package_version"`
	License         string `json:"license"`
	Provider        string `json:"provider"`
	ProviderVersion string `json:"provider_version"`
	Generator       string `json:"generator"`
}

// Provider is one provider's schemas.
type Provider struct {
	Provider          *Schema            `json:"provider"`
	ResourceSchemas   map[string]*Schema `json:"resource_schemas"`
	DataSourceSchemas map[string]*Schema `json:"data_source_schemas"`
}

// Schema is a versioned block.
type Schema struct {
	Version int64  `json:"version"`
	Block   *Block `json:"block"`
}

// Block holds attributes and nested blocks.
type Block struct {
	Attributes      map[string]*Attribute `json:"attributes,omitempty"`
	BlockTypes      map[string]*BlockType `json:"block_types,omitempty"`
	DescriptionKind string                `json:"description_kind,omitempty"`
}

// Attribute's Type is a cty type in its JSON form: "string",
// ["list","string"], ["object",{"a":"number"}], "dynamic".
type Attribute struct {
	Type            json.RawMessage `json:"type"`
	Required        bool            `json:"required,omitempty"`
	Optional        bool            `json:"optional,omitempty"`
	Computed        bool            `json:"computed,omitempty"`
	Sensitive       bool            `json:"sensitive,omitempty"`
	DescriptionKind string          `json:"description_kind,omitempty"`
}

// BlockType is a nested block: nesting_mode is single, list, set, map or
// group.
type BlockType struct {
	NestingMode string `json:"nesting_mode"`
	Block       *Block `json:"block"`
	MinItems    int64  `json:"min_items,omitempty"`
	MaxItems    int64  `json:"max_items,omitempty"`
}
