package e2e

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/protocol"
)

// TestEveryAPIIsAuthorized: a principal with no ACLs sends every API the
// agent serves, each naming an existing topic and group, straight to the
// agent (no coordinator lookup), and every one is refused with its
// resource's code, or hides what it may not see. A new API must be added
// here, so none is served unchecked.
func TestEveryAPIIsAuthorized(t *testing.T) {
	a := secureAgent(t, harness.FileBackend(t))
	adm := adminOf(t, a.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "t"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	admin := client(t, a.Addr, scramLogin(adminUser, adminPass))
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var offs kadm.Offsets
	offs.AddOffset("t", 0, 1, -1)
	if r, err := adm.CommitOffsets(ctx, "g", offs); err != nil || r.Error() != nil {
		t.Fatal(err, r.Error())
	}
	addUser(t, adm, "nobody", "nobody-secret")
	cl := client(t, a.Addr, scramLogin("nobody", "nobody-secret"), kgo.MaxVersions(kversion.V3_0_0()))
	brokers, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	broker := cl.Broker(int(brokers.Brokers[0].NodeID))

	topic, group := "t", "g"
	const (
		topicAuth   = 29 // TOPIC_AUTHORIZATION_FAILED
		groupAuth   = 30 // GROUP_AUTHORIZATION_FAILED
		clusterAuth = 31 // CLUSTER_AUTHORIZATION_FAILED
		txnAuth     = 53 // TRANSACTIONAL_ID_AUTHORIZATION_FAILED
	)
	refused := map[int16]int16{} // API key → the code it must answer
	var reqs []kmsg.Request
	add := func(code int16, r kmsg.Request) {
		refused[r.Key()] = code
		reqs = append(reqs, r)
	}
	{
		r := kmsg.NewPtrProduceRequest()
		r.Acks = -1
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rt.Partitions = []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: []byte{1}}}
		r.Topics = append(r.Topics, rt)
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrFetchRequest()
		r.MaxBytes = 1 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rt.Partitions = append(rt.Partitions, kmsg.NewListOffsetsRequestTopicPartition())
		r.Topics = append(r.Topics, rt)
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = &topic
		r.Topics = append(r.Topics, rt)
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Group, r.Generation = group, -1
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		rt.Partitions = append(rt.Partitions, kmsg.NewOffsetCommitRequestTopicPartition())
		r.Topics = append(r.Topics, rt)
		add(groupAuth, r)
	}
	{
		r := kmsg.NewPtrOffsetFetchRequest()
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = group
		r.Groups = append(r.Groups, rg)
		add(groupAuth, r)
	}
	{
		r := kmsg.NewPtrFindCoordinatorRequest()
		r.CoordinatorKey, r.CoordinatorKeys = group, []string{group}
		add(groupAuth, r)
	}
	{
		r := kmsg.NewPtrJoinGroupRequest()
		r.Group, r.ProtocolType, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = group, "consumer", 10000, 10000
		r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: "range"})
		add(groupAuth, r)
	}
	for _, r := range []kmsg.Request{
		&kmsg.HeartbeatRequest{Group: group, MemberID: "m"},
		&kmsg.LeaveGroupRequest{Group: group, MemberID: "m", Members: []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}},
		&kmsg.SyncGroupRequest{Group: group, MemberID: "m"},
		&kmsg.DescribeGroupsRequest{Groups: []string{group}},
		&kmsg.DeleteGroupsRequest{Groups: []string{group}},
	} {
		add(groupAuth, r)
	}
	{
		r := kmsg.NewPtrOffsetDeleteRequest()
		r.Group = group
		r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
		add(groupAuth, r)
	}
	{
		r := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "new", 1, 1
		r.Topics = append(r.Topics, rt)
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrDeleteTopicsRequest()
		r.TopicNames = []string{topic}
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = &topic
		r.Topics = append(r.Topics, rt)
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrDeleteRecordsRequest()
		r.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: topic, Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: -1}}}}
		add(topicAuth, r)
	}
	add(clusterAuth, kmsg.NewPtrInitProducerIDRequest())
	// A transactional id the principal may not WRITE.
	add(txnAuth, &kmsg.AddPartitionsToTxnRequest{TransactionalID: "tx", ProducerID: 1,
		Topics: []kmsg.AddPartitionsToTxnRequestTopic{{Topic: topic, Partitions: []int32{0}}}})
	add(txnAuth, &kmsg.AddOffsetsToTxnRequest{TransactionalID: "tx", ProducerID: 1, Group: group})
	add(txnAuth, &kmsg.DescribeTransactionsRequest{TransactionalIDs: []string{"tx"}})
	add(topicAuth, &kmsg.DescribeProducersRequest{Topics: []kmsg.DescribeProducersRequestTopic{{Topic: topic, Partitions: []int32{0}}}})
	add(txnAuth, &kmsg.EndTxnRequest{TransactionalID: "tx", ProducerID: 1, Commit: true})
	add(txnAuth, &kmsg.TxnOffsetCommitRequest{TransactionalID: "tx", Group: group, ProducerID: 1,
		Topics: []kmsg.TxnOffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}})
	{
		r := kmsg.NewPtrOffsetForLeaderEpochRequest()
		r.ReplicaID = -1
		r.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, LeaderEpoch: 0, CurrentLeaderEpoch: -1}}}}
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrDescribeConfigsRequest()
		r.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: topic}}
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrAlterConfigsRequest()
		r.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: topic}}
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrIncrementalAlterConfigsRequest()
		r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: topic}}
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrCreatePartitionsRequest()
		r.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: topic, Count: 2}}
		add(topicAuth, r)
	}
	{
		r := kmsg.NewPtrDescribeACLsRequest()
		r.ResourceType, r.ResourcePatternType, r.Operation, r.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		add(clusterAuth, r)
	}
	{
		r := kmsg.NewPtrCreateACLsRequest()
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, topic, kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host, c.Operation, c.PermissionType = "User:nobody", "*", kmsg.ACLOperationAll, kmsg.ACLPermissionTypeAllow
		r.Creations = append(r.Creations, c)
		add(clusterAuth, r)
	}
	{
		r := kmsg.NewPtrDeleteACLsRequest()
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.ResourcePatternType, f.Operation, f.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		r.Filters = append(r.Filters, f)
		add(clusterAuth, r)
	}
	add(clusterAuth, kmsg.NewPtrDescribeUserSCRAMCredentialsRequest())
	{
		r := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
		r.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{{Name: adminUser, Mechanism: 2}}
		add(clusterAuth, r)
	}

	for _, req := range reqs {
		resp, err := broker.Request(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
		}
		want := refused[req.Key()]
		codes := errorCodes(reflect.ValueOf(resp), nil)
		if !slices.Contains(codes, want) || slices.ContainsFunc(codes, func(c int16) bool { return c != 0 && c != want }) {
			t.Errorf("%s answered %v, want %s", kmsg.NameForKey(req.Key()), codes, kerr.ErrorForCode(want))
		}
	}

	// What a principal may not see is left out.
	md, err := broker.Request(ctx, kmsg.NewPtrMetadataRequest())
	if err != nil || len(md.(*kmsg.MetadataResponse).Topics) != 0 {
		t.Errorf("all-topics Metadata: %v, %+v; want no topics", err, md)
	}
	lg, err := broker.Request(ctx, kmsg.NewPtrListGroupsRequest())
	if err != nil || len(lg.(*kmsg.ListGroupsResponse).Groups) != 0 {
		t.Errorf("ListGroups: %v, %+v; want no groups", err, lg)
	}
	initTxn := kmsg.NewPtrInitProducerIDRequest()
	initTxn.TransactionalID, initTxn.TransactionTimeoutMillis = kmsg.StringPtr("tx-of-the-admin"), 60000
	if r, err := initTxn.RequestWith(ctx, admin); err != nil || r.ErrorCode != 0 {
		t.Fatalf("the admin's InitProducerID: %v %+v", err, r)
	}
	lt, err := broker.Request(ctx, kmsg.NewPtrListTransactionsRequest())
	if err != nil || len(lt.(*kmsg.ListTransactionsResponse).TransactionStates) != 0 {
		t.Errorf("ListTransactions: %v, %+v; want no transactions", err, lt)
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	dc.IncludeClusterAuthorizedOperations = true
	if r, err := broker.Request(ctx, dc); err != nil || r.(*kmsg.DescribeClusterResponse).ClusterAuthorizedOperations != 0 {
		t.Errorf("DescribeCluster: %v, %+v; want no authorized operations", err, r)
	}
	checked := map[int16]bool{kmsg.ApiVersions.Int16(): true, kmsg.SASLHandshake.Int16(): true, kmsg.SASLAuthenticate.Int16(): true,
		kmsg.ListGroups.Int16(): true, kmsg.DescribeCluster.Int16(): true, kmsg.ListTransactions.Int16(): true}
	for _, k := range protocol.SupportedAPIs() {
		if _, ok := refused[k.ApiKey]; !ok && !checked[k.ApiKey] {
			t.Errorf("%s is served but not checked here", kmsg.NameForKey(k.ApiKey))
		}
	}

	// The admin's state is untouched.
	topics, err := adm.ListTopics(ctx)
	if err != nil || !topics.Has(topic) || topics.Has("new") {
		t.Fatalf("topics after the refusals: %v, %v", topics.Names(), err)
	}
}

// errorCodes collects every ErrorCode field in v, however deep.
func errorCodes(v reflect.Value, out []int16) []int16 {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			out = errorCodes(v.Elem(), out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
				out = append(out, int16(v.Field(i).Int()))
			} else if f.IsExported() {
				out = errorCodes(v.Field(i), out)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Uint8 {
			for i := range v.Len() {
				out = errorCodes(v.Index(i), out)
			}
		}
	}
	return out
}
