package batch

import (
	"encoding/binary"
	"fmt"
)

// Control batches: the commit and abort markers a transaction coordinator
// writes into each partition a transaction touched. One record, whose key
// is the control record's version (int16, 0) and type (int16: 0 abort,
// 1 commit) and whose value is its version (int16, 0) and the
// coordinator's epoch (int32); the batch is transactional and control,
// with the producer's id and epoch and no sequence. Kafka's clients read
// the key to tell commit from abort (ControlRecordType).

// ControlAbort and ControlCommit are the control record types.
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// ControlBatch returns a marker batch (base offset 0) for a transaction
// of producer pid at epoch, committed or aborted at timestamp ms.
func ControlBatch(pid int64, epoch int16, commit bool, coordinatorEpoch int32, ms int64) []byte {
	typ := ControlAbort
	if commit {
		typ = ControlCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	h := Header{PartitionLeaderEpoch: -1, Attributes: attrTransactional | attrControl, FirstTimestamp: ms, MaxTimestamp: ms,
		ProducerID: pid, ProducerEpoch: epoch, BaseSequence: -1}
	b, err := Build(h, None, []Record{{Key: key, Value: value}})
	if err != nil {
		panic(fmt.Sprintf("batch: building a control batch: %v", err)) // one small uncompressed record cannot fail
	}
	return b
}

// ControlType returns the type of a control batch's record (ControlAbort
// or ControlCommit), or an error if b is not a control batch.
func ControlType(b []byte) (int16, error) {
	h, err := Validate(b)
	if err != nil {
		return 0, err
	}
	if !h.IsControl() {
		return 0, fmt.Errorf("%w: not a control batch", ErrInvalidRecord)
	}
	recs, err := Records(b, HeaderSize+1024)
	if err != nil {
		return 0, err
	}
	if len(recs) != 1 || len(recs[0].Key) < 4 {
		return 0, fmt.Errorf("%w: control batch without a control record", ErrInvalidRecord)
	}
	return int16(binary.BigEndian.Uint16(recs[0].Key[2:4])), nil
}
