package meta

import "fmt"

// The registry of op kinds: every kind the log has ever had, its number in
// entries, the cluster format that introduced it and its decoder. Kinds are
// added, never renumbered or reused. Each op's fields and Apply rules live
// beside its type (the file named in the comment); its encoding is its
// encode method.
//
// An op of a kind newer than the cluster's format is never written
// (Log.write checks), so an agent that has not announced it understands the
// kind never meets it. The format ops are the exception: they move the
// cluster between formats, so they may appear in an entry of any version,
// always alone in their entry, and their encoding never changes.
const (
	kindCreateTopic           = 1  // entry.go
	kindDeleteTopic           = 2  // entry.go
	kindCreatePartitions      = 3  // entry.go
	kindCommit                = 4  // entry.go
	kindReserveProducers      = 5  // entry.go
	kindGroupGeneration       = 6  // groups.go
	kindCommitOffsets         = 7  // groups.go
	kindDeleteGroups          = 8  // groups.go
	kindDeleteOffsets         = 9  // groups.go
	kindAgentHeartbeat        = 10 // agents.go
	kindSetTopicConfigs       = 11 // retention.go
	kindAdvanceLogStart       = 12 // retention.go
	kindForgetObjects         = 13 // retention.go
	kindReplaceChunks         = 14 // compaction.go
	kindAcquireLease          = 15 // leases.go
	kindReleaseLease          = 16 // leases.go
	kindCleanChunks           = 17 // clean.go
	kindAnnounceFormat        = 18 // format.go (a format op)
	kindSetFormat             = 19 // format.go (a format op)
	kindCondemnObjects        = 20 // condemn.go
	kindExpireProducers       = 21 // producers.go
	kindLeaveCluster          = 22 // format.go (a format op)
	kindExpireAgent           = 23 // membership.go
	kindContribute            = 24 // sequencer.go
	kindSetScramCredential    = 25 // security.go
	kindDeleteScramCredential = 26 // security.go
	kindCreateACLs            = 27 // security.go
	kindDeleteACLs            = 28 // security.go
	kindInitTxn               = 29 // txn.go
	kindAddToTxn              = 30 // txn.go
	kindTxnCommitOffsets      = 31 // txn.go
	kindEndTxn                = 32 // txn.go
	kindExpireTxns            = 33 // txn.go
)

// opSpec describes one op kind.
type opSpec struct {
	name string
	// since is the cluster format that introduced the kind; 0 marks a
	// format op, allowed in an entry of any version.
	since  Format
	decode func(d *decoder) Op
}

var opSpecs = [...]opSpec{
	kindCreateTopic:           {"CreateTopic", Format1, decodeCreateTopic},
	kindDeleteTopic:           {"DeleteTopic", Format1, decodeDeleteTopic},
	kindCreatePartitions:      {"CreatePartitions", Format1, decodeCreatePartitions},
	kindCommit:                {"Commit", Format1, decodeCommit},
	kindReserveProducers:      {"ReserveProducers", Format1, decodeReserveProducers},
	kindGroupGeneration:       {"GroupGeneration", Format1, decodeGroupGeneration},
	kindCommitOffsets:         {"CommitOffsets", Format1, decodeCommitOffsets},
	kindDeleteGroups:          {"DeleteGroups", Format1, decodeDeleteGroups},
	kindDeleteOffsets:         {"DeleteOffsets", Format1, decodeDeleteOffsets},
	kindAgentHeartbeat:        {"AgentHeartbeat", Format1, decodeAgentHeartbeat},
	kindSetTopicConfigs:       {"SetTopicConfigs", Format1, decodeSetTopicConfigs},
	kindAdvanceLogStart:       {"AdvanceLogStart", Format1, decodeAdvanceLogStart},
	kindForgetObjects:         {"ForgetObjects", Format1, decodeForgetObjects},
	kindReplaceChunks:         {"ReplaceChunks", Format1, decodeReplaceChunks},
	kindAcquireLease:          {"AcquireLease", Format1, decodeAcquireLease},
	kindReleaseLease:          {"ReleaseLease", Format1, decodeReleaseLease},
	kindCleanChunks:           {"CleanChunks", Format1, decodeCleanChunks},
	kindAnnounceFormat:        {"AnnounceFormat", 0, decodeAnnounceFormat},
	kindSetFormat:             {"SetFormat", 0, decodeSetFormat},
	kindCondemnObjects:        {"CondemnObjects", Format2, decodeCondemnObjects},
	kindExpireProducers:       {"ExpireProducers", Format2, decodeExpireProducers},
	kindLeaveCluster:          {"LeaveCluster", 0, decodeLeaveCluster},
	kindExpireAgent:           {"ExpireAgent", Format4, decodeExpireAgent},
	kindContribute:            {"Contribute", Format5, nil}, // decodeContribute, set in init: it decodes ops itself
	kindSetScramCredential:    {"SetScramCredential", Format6, decodeSetScramCredential},
	kindDeleteScramCredential: {"DeleteScramCredential", Format6, decodeDeleteScramCredential},
	kindCreateACLs:            {"CreateACLs", Format6, decodeCreateACLs},
	kindDeleteACLs:            {"DeleteACLs", Format6, decodeDeleteACLs},
	kindInitTxn:               {"InitTxn", Format7, decodeInitTxn},
	kindAddToTxn:              {"AddToTxn", Format7, decodeAddToTxn},
	kindTxnCommitOffsets:      {"TxnCommitOffsets", Format7, decodeTxnCommitOffsets},
	kindEndTxn:                {"EndTxn", Format7, decodeEndTxn},
	kindExpireTxns:            {"ExpireTxns", Format7, decodeExpireTxns},
}

// specOf returns the spec of kind k, or nil for a kind this build does not
// know.
func specOf(k uint8) *opSpec {
	if int(k) >= len(opSpecs) || opSpecs[k].decode == nil {
		return nil
	}
	return &opSpecs[k]
}

// OpFormat returns the cluster format an op needs before it may be written.
func OpFormat(op Op) Format {
	if s := specOf(op.kind()); s != nil && s.since > 0 {
		return s.since
	}
	return Format1
}

// isFormatOp reports whether op is a format op, which is written alone.
func isFormatOp(op Op) bool {
	s := specOf(op.kind())
	return s != nil && s.since == 0
}

// OpName names an op's kind, for messages.
func OpName(op Op) string {
	if s := specOf(op.kind()); s != nil {
		return s.name
	}
	return fmt.Sprintf("op kind %d", op.kind())
}

// decodeOp reads one op of kind k from an entry of d's format.
func decodeOp(d *decoder, k uint8) (Op, error) {
	s := specOf(k)
	if s == nil {
		// A kind this build does not know was written by a newer one:
		// never guess at it.
		return nil, &FormatError{Need: MaxFormat + 1, What: fmt.Sprintf("op kind %d", k)}
	}
	if s.since > d.format {
		return nil, fmt.Errorf("%w: %s in an entry of format %d", ErrCorrupt, s.name, d.format)
	}
	return s.decode(d), nil
}
