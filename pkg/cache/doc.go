// Package cache plays the role of Kafka's page cache for segment bytes.
// The newest committed objects are held whole, outside any admission
// policy, so consumers at the tail never reach the bucket. Objects read
// whole from the bucket (Whole: a consumer catching up) are held in their
// own byte-bounded FIFO, shared by every reader: each range is prepared in
// place once (Whole.Prepare), never copied out, and an object whose every
// range has been read — or every range of each group (a segment's topics)
// any reader asked for, until a reader of another group starts on it —
// leaves before those still being read. Other ranges
// go through a Ristretto cache (cost = bytes). The budget is half for the
// newest objects and a quarter each for the other two, or three eighths
// and one eighth once FavourWhole is called (most reads are whole).
// Objects read whole may also use what the newest objects leave of their
// half, and give it back as new objects arrive: an agent serving
// consumers far behind, to which little is produced, then holds more than
// twice the segments, so that several consumers catching up at once meet
// in it instead of each reading every segment again. The two never hold
// more than their shares together. Loads are single-flight, so many
// consumers missing the same bytes make one GET. Nothing depends on a hit
// for correctness: any entry may be refused or dropped.
package cache
