#!/bin/sh
# install-terraform.sh BINDIR: builds Terraform from source with the Go
# toolchain into BINDIR/terraform (for `make deps` on machines without it).
#
# `go install github.com/hashicorp/terraform@v1.11.4` does not work: the
# module's go.mod replaces its nested modules (internal/legacy and the
# remote-state backends) with local directories, which are not in the
# module zip, and go install refuses modules with replace directives. This
# builds the same source with those nested modules taken from the module
# proxy at the v1.11.4 commit instead. TERRAFORM_NESTED must be the
# pseudo-version of that commit when TERRAFORM_VERSION changes.
set -eu
bindir=$1
version=${TERRAFORM_VERSION:-1.11.4}
nested=${TERRAFORM_NESTED:-v0.0.0-20250409131005-35645b8fca68}
GO=${GO:-go}

dir=$($GO mod download -json "github.com/hashicorp/terraform@v$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "install-terraform: go mod download gave no directory" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$dir/go.mod" "$dir/go.sum" "$tmp/"
chmod u+w "$tmp/go.mod" "$tmp/go.sum"
# Go 1.24 renamed the tlskyber setting (post-quantum key exchange, which
# v1.11.4 turns off) to tlsmlkem; a Go that no longer knows tlskyber
# rejects the go.mod.
sed 's/^godebug tlskyber=0$/godebug tlsmlkem=0/' "$tmp/go.mod" >"$tmp/go.mod.new"
mv "$tmp/go.mod.new" "$tmp/go.mod"
for m in $(sed -n 's|^replace \(github.com/hashicorp/terraform/[^ ]*\) => \./.*|\1|p' "$tmp/go.mod"); do
	$GO mod edit -dropreplace="$m" -require="$m@$nested" "$tmp/go.mod"
done
mkdir -p "$bindir"
cd "$dir"
# As the release builds do: dev=no makes it a release (no "-dev" suffix, no
# language experiments).
$GO build -mod=mod -modfile="$tmp/go.mod" -trimpath \
	-ldflags "-s -w -X github.com/hashicorp/terraform/version.dev=no" \
	-o "$bindir/terraform.tmp.$$" .
mv "$bindir/terraform.tmp.$$" "$bindir/terraform"
TF_CLI_CONFIG_FILE=/dev/null "$bindir/terraform" version
