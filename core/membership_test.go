package core_test

import (
	"slices"
	"testing"

	"github.com/grovekit/grove/core/coretest"
)

func TestAddLearnerPromoteAndRemove(t *testing.T) {
	c := coretest.NewCluster(t, 3)
	leader := c.WaitLeader(t.Context())
	a := newAcked()
	writeN(t, leader, "/before", 20, a)
	learner, err := c.AddNode(t.Context(), true)
	must(t, err)
	st := leader.Status()
	if !slices.Contains(st.Learners, learner.ID()) || slices.Contains(st.Voters, learner.ID()) {
		t.Fatalf("after AddLearner: voters %v learners %v", st.Voters, st.Learners)
	}
	if r := learner.Status().Role; r != "learner" {
		t.Fatalf("learner reports role %q", r)
	}
	voter, err := c.AddNode(t.Context(), false)
	must(t, err)
	if st := leader.Status(); !slices.Contains(st.Voters, voter.ID()) || len(st.Voters) != 4 {
		t.Fatalf("after AddVoter: voters %v", st.Voters)
	}
	writeN(t, learner, "/via-learner", 5, a) // learners forward writes too
	c.WaitConverged(t.Context())
	a.check(t, c)
	must(t, c.Remove(t.Context(), voter.ID()))
	if st := c.WaitLeader(t.Context()).Status(); slices.Contains(st.Voters, voter.ID()) {
		t.Fatalf("removed voter still in %v", st.Voters)
	}
	writeN(t, c.WaitLeader(t.Context()), "/after", 5, a)
	c.WaitConverged(t.Context())
	a.check(t, c)
}
