package groups

import (
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// Log is what the coordinator needs of the metadata log; *meta.Log has it.
type Log interface {
	// View calls fn with the log's state under a read lock.
	View(fn func(*meta.State))
	// TrySubmit queues ops for appending without waiting for room in the
	// queue (meta.ErrBusy when it is full): the coordinator submits under
	// its mutex.
	TrySubmit(ops ...meta.Op) (*meta.Pending, error)
}

// Config is the coordinator's settings, by their Kafka names.
type Config struct {
	Logger *slog.Logger // nil: slog.Default()
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms: how long
	// the first rebalance of an empty group waits for more members (0:
	// none).
	InitialRebalanceDelay time.Duration
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms; 0: 6 s
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms; 0: 30 min
}

// Kafka's broker defaults.
const (
	defaultMinSessionTimeout = 6 * time.Second  // group.min.session.timeout.ms
	defaultMaxSessionTimeout = 30 * time.Minute // group.max.session.timeout.ms
	maxMemberMetadataBytes   = 1 << 20          // per JoinGroup: protocols' metadata together
)

// Client is who sent a request, for member ids and DescribeGroups.
type Client struct{ ID, Host string }

// Coordinator holds every group this agent coordinates.
type Coordinator struct {
	log          Log
	logger       *slog.Logger
	initialDelay time.Duration
	minSession   time.Duration
	maxSession   time.Duration

	mu     sync.Mutex
	groups map[string]*group
}

// New returns a coordinator with no group in memory: each is started from
// the log when first used.
func New(log Log, cfg Config) *Coordinator {
	c := &Coordinator{log: log, logger: cfg.Logger, initialDelay: cfg.InitialRebalanceDelay,
		minSession: cfg.MinSessionTimeout, maxSession: cfg.MaxSessionTimeout, groups: map[string]*group{}}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.minSession <= 0 {
		c.minSession = defaultMinSessionTimeout
	}
	if c.maxSession <= 0 {
		c.maxSession = defaultMaxSessionTimeout
	}
	return c
}

type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
	groupDead
)

// Dead is the state DescribeGroups gives a group it does not know.
const Dead = "Dead"

func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", Dead}[s]
}

type group struct {
	c            *Coordinator
	name         string
	state        groupState
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	pending      map[string]*time.Timer // member ids handed out with MEMBER_ID_REQUIRED
	static       map[string]string      // group.instance.id → member id
	pendingSync  map[string]bool        // members yet to send SyncGroup this generation

	timer          *time.Timer // rebalance, initial delay or sync deadline
	timerSeq       uint64      // bumped whenever timer is replaced
	initialDelay   bool        // in group.initial.rebalance.delay
	newMemberAdded bool
	logging        *meta.Pending // the last generation's append, until done
}

type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocols        []kmsg.JoinGroupRequestProtocol
	assignment       []byte

	joinVersion int16
	join        chan *kmsg.JoinGroupResponse // set while awaiting the join's answer
	sync        chan syncAnswer              // set while awaiting the sync's answer

	session    *time.Timer
	sessionSeq uint64
}

// newGroup starts a group's in-memory state where the log left it, so that
// generations keep increasing across agent restarts.
func (c *Coordinator) newGroup(name string) *group {
	g := &group{c: c, name: name, members: map[string]*member{}, pending: map[string]*time.Timer{}, static: map[string]string{}}
	c.log.View(func(st *meta.State) {
		if lg, ok := st.Group(name); ok && lg.Generation > 0 {
			g.generation = lg.Generation
			if len(lg.Members) == 0 {
				g.protocolType = lg.ProtocolType
			}
		}
	})
	c.groups[name] = g
	return g
}

func (g *group) alive() bool { return g.c.groups[g.name] == g }

// release frees the group's memory if it is idle (see the package doc).
func (c *Coordinator) release(g *group) {
	if g.alive() && g.state == groupEmpty && len(g.members) == 0 && len(g.pending) == 0 && g.logging == nil {
		g.stopTimer()
		delete(c.groups, g.name)
	}
}
